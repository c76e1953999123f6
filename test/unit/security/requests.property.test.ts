import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_ERROR_DETAILS } from '../../../contract/index.ts';
import { ApiError } from '../../../functions/api/errors.ts';
import { validateUploadRequest } from '../../../functions/api/presign/validate.ts';
import { type ApiDeps, type ApiEvent, handleApiRequest } from '../../../functions/api/router.ts';
import { encodeCursor, parseCursor } from '../../../functions/api/status/queries.ts';
import { isId, newId } from '../../../functions/shared/ids.ts';
import type { Quotas } from '../../../functions/shared/records/ports.ts';
import { assertConforms } from '../../support/openapi-conformance.ts';

/** Fixed, so a failure reproduces; run counts keep this file under a few seconds. */
const SEED = 20_261_213;
const limits = { maxFilesPerBatch: 20, maxBytes: 1_000_000, acceptedTypes: ['image/jpeg', 'image/png'] };

/** Values that request validation trips on, nested in arbitrary JSON. */
const hostileValue = fc.oneof(
  fc.constantFrom(
    '',
    '../../etc/passwd',
    'a\u0000b',
    'x'.repeat(300),
    'image/jpeg',
    'IMAGE/JPG',
    'application/octet-stream',
    -1,
    0,
    1.5,
    Number.MAX_SAFE_INTEGER + 2,
    1e308,
    'javascript:alert(1)',
    'http://127.0.0.1/',
  ),
  fc.jsonValue({ maxDepth: 2 }),
);
const fileEntry = fc.oneof(
  fc.record(
    { name: hostileValue, type: hostileValue, size: hostileValue, sha256: hostileValue },
    { requiredKeys: [] },
  ),
  fc.record({
    name: fc.string({ unit: 'grapheme', maxLength: 300 }),
    type: fc.constantFrom('image/jpeg', 'image/png', 'image/svg+xml', ''),
    size: fc.integer({ min: -5, max: 2_000_000 }),
  }),
  hostileValue,
);
const uploadBody = fc.oneof(
  fc.record(
    {
      files: fc.oneof(fc.array(fileEntry, { maxLength: 40 }), hostileValue),
      callbackUrl: hostileValue,
    },
    { requiredKeys: ['files'] },
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc.anything(),
);

/** The most any one error or file result may say: its size does not grow with the input. */
const MAX_MESSAGE = 1000;

describe('request validation, fuzzed', () => {
  it('returns one bounded result per file or throws a bounded ApiError, for any body', () => {
    fc.assert(
      fc.property(uploadBody, (body) => {
        let result: ReturnType<typeof validateUploadRequest>;
        try {
          result = validateUploadRequest(body, limits);
        } catch (error) {
          expect(error).toBeInstanceOf(ApiError);
          const apiError = error as ApiError;
          expect(apiError.status).toBeLessThan(500);
          expect(apiError.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
          expect(apiError.details?.length ?? 0).toBeLessThanOrEqual(MAX_ERROR_DETAILS);
          return;
        }
        expect(result.files.length).toBeGreaterThanOrEqual(1);
        expect(result.files.length).toBeLessThanOrEqual(limits.maxFilesPerBatch);
        for (const file of result.files) {
          if (file.ok) {
            expect(file.file.name.length).toBeLessThanOrEqual(255);
            expect(file.file.size).toBeLessThanOrEqual(limits.maxBytes);
          } else {
            expect(file.name.length).toBeLessThanOrEqual(255);
            expect(file.error.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
          }
        }
        expect(result.callbackUrl?.length ?? 0).toBeLessThanOrEqual(2048);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('bounds the work and the answer for a list far over the limit', () => {
    const huge = { files: Array.from({ length: 1_000_000 }, () => 7) };
    const started = performance.now();
    expect(() => validateUploadRequest(huge, limits)).toThrow(
      expect.objectContaining({ code: 'TooManyFiles' }),
    );
    expect(performance.now() - started).toBeLessThan(50);
  });
});

/** In-memory stand-ins for the records and signer: the router's own behaviour is under test. */
function fakeDeps(): ApiDeps {
  const quotas: Quotas = {
    hit: async () => ({ allowed: true }),
    reserveUploads: async () => ({ reserved: true }),
    releaseUploads: async () => {},
  };
  const signer = {
    presignPut: async () => ({ method: 'PUT' as const, url: 'https://s3.example/u', headers: {} }),
    presignGet: async () => 'https://s3.example/g',
  };
  const batches = {
    createBatch: async () => {},
    getBatch: async () => undefined,
    listItems: async () => ({ items: [], more: false }),
  };
  const sharedFiles = {
    find: async () => new Map(),
    offer: async () => {},
    retain: async () => true,
    release: async () => 0,
  };
  return {
    uploads: {
      batches,
      sharedFiles,
      signer,
      quotas,
      callbacks: { check: async () => {} },
      metrics: { filesRequested: () => {} },
      uploadBucket: 'uploads',
      uploadPrefix: 'uploads/',
      limits: { ...limits, uploadUrlTtlSeconds: 900, maxOpenUploads: 5000 },
    },
    status: {
      batches,
      images: {
        getImage: async () => undefined,
        getImageByKey: async () => undefined,
        listStale: async function* () {},
      },
      moves: {} as ApiDeps['status']['moves'],
      sharedFiles,
      signer,
      objects: {} as ApiDeps['status']['objects'],
      uploadBucket: 'uploads',
      variantsBucket: 'variants',
      uploadUrlTtlSeconds: 900,
      maxOpenUploads: 5000,
      quotas,
    },
    limits: { ...limits, uploadUrlTtlSeconds: 900, variants: [] },
    quotas,
    requestsPerMinute: 1000,
    logger: {
      error: (message) => {
        throw new Error(`the router logged an error: ${message}`);
      },
    },
  };
}

const ROUTE_KEYS = [
  'POST /v1/uploads',
  'GET /v1/images/{imageId}',
  'DELETE /v1/images/{imageId}',
  'POST /v1/images/{imageId}/upload',
  'GET /v1/batches/{batchId}',
  'GET /v1/limits',
] as const;

/** What API Gateway may hand the function: odd path parameters, query strings, subjects and bodies. */
const oddString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('%ZZ', '%', '..', '01JAAAAAAAAAAAAAAAAAAAAAAA', '', ' ', '\u0000', 'x'.repeat(3000)),
);
const eventArbitrary = fc.record({
  routeKey: fc.constantFrom(...ROUTE_KEYS),
  id: oddString,
  sub: fc.oneof(fc.constant('alice'), oddString),
  query: fc.option(fc.dictionary(fc.constantFrom('limit', 'cursor', 'x'), oddString), { nil: undefined }),
  body: fc.option(
    fc.oneof(
      uploadBody.map((b) => {
        try {
          return JSON.stringify(b) ?? 'null';
        } catch {
          return '{';
        }
      }),
      oddString,
    ),
    { nil: undefined },
  ),
  base64: fc.boolean(),
  ifNoneMatch: fc.option(oddString, { nil: undefined }),
});

function toEvent(input: typeof eventArbitrary extends fc.Arbitrary<infer T> ? T : never): ApiEvent {
  const id = input.routeKey.includes('{batchId}') ? { batchId: input.id } : { imageId: input.id };
  return {
    version: '2.0',
    routeKey: input.routeKey,
    rawPath: '/',
    rawQueryString: '',
    headers: input.ifNoneMatch === undefined ? {} : { 'if-none-match': input.ifNoneMatch },
    ...(input.query ? { queryStringParameters: input.query } : {}),
    ...(input.routeKey.includes('{') ? { pathParameters: id } : {}),
    ...(input.body === undefined
      ? {}
      : { body: input.base64 ? Buffer.from(input.body).toString('base64') : input.body }),
    isBase64Encoded: input.base64,
    requestContext: {
      authorizer: { jwt: { claims: { sub: input.sub }, scopes: [] } },
    } as unknown as ApiEvent['requestContext'],
  };
}

describe('the API router, fuzzed', () => {
  it('answers every request with a status below 500 and a body the OpenAPI document allows', async () => {
    const deps = fakeDeps();
    await fc.assert(
      fc.asyncProperty(eventArbitrary, async (input) => {
        const result = await handleApiRequest(deps, toEvent(input));
        expect(result.statusCode).toBeLessThan(500);
        const body = result.body === undefined ? undefined : JSON.parse(result.body);
        // A response never grows with the input: at most a page of 20 items here.
        expect(result.body?.length ?? 0).toBeLessThan(64 * 1024);
        const path =
          input.routeKey === 'GET /v1/batches/{batchId}'
            ? '/v1/batches/01JAAAAAAAAAAAAAAAAAAAAAAA'
            : input.routeKey.split(' ')[1]?.replace('{imageId}', '01JAAAAAAAAAAAAAAAAAAAAAAA');
        assertConforms(input.routeKey.split(' ')[0] ?? 'GET', path ?? '/', result.statusCode ?? 200, body);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });
});

describe('cursor decoding, fuzzed', () => {
  it('gives back the item id of every cursor it made', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), () => {
        const id = newId();
        expect(parseCursor(encodeCursor(id))).toBe(id);
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('turns anything else into 400 InvalidRequest or a well-formed id, never another error', () => {
    const cursor = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 100 }),
      fc.string({ unit: 'binary-ascii', minLength: 60, maxLength: 5000 }),
      fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
      fc.constant(encodeCursor('01JAAAAAAAAAAAAAAAAAAAAAAA').slice(1)),
    );
    fc.assert(
      fc.property(cursor, (raw) => {
        try {
          expect(isId(parseCursor(raw))).toBe(true);
        } catch (error) {
          expect(error).toMatchObject({ name: 'ApiError', code: 'InvalidRequest', status: 400 });
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});
