import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAdapters } from '../../../functions/shared/adapters.ts';
import { parseConfig } from '../../../functions/shared/config.ts';
import { INCOMING_TAG } from '../../../functions/shared/storage/object-keys.ts';
import { S3UrlSigner } from '../../../functions/shared/storage/s3-url-signer.ts';

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
/**
 * Each case: the client the signer is handed, and the client whose `getSignedUrl` gives the
 * expected URL. The reference computes checksums only when required: with the SDK's default
 * (`WHEN_SUPPORTED`) getSignedUrl signs the CRC32 of an empty body into every PUT URL, which S3
 * refuses for any real upload (aws-sdk-js-v3#6994), so that output is not a valid expectation.
 */
const CLIENTS = {
  'AWS (virtual-hosted, SDK default checksums)': {
    make: () => new S3Client({ region: 'eu-west-1', credentials }),
    reference: () =>
      new S3Client({ region: 'eu-west-1', credentials, requestChecksumCalculation: 'WHEN_REQUIRED' }),
  },
  'S3-compatible (path-style)': {
    make: () => compatibleClient(),
    reference: () => compatibleClient(),
  },
};
function compatibleClient() {
  return new S3Client({
    region: 'us-east-1',
    credentials,
    endpoint: 'http://127.0.0.1:4569',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
}
const KEY = 'uploads/01JAAAAAAAAAAAAAAAAAAAAAAA/01JBBBBBBBBBBBBBBBBBBBBBBB';
const SHA = 'ab'.repeat(32);

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
});

/**
 * The signer signs copies of one SDK-built request instead of calling getSignedUrl per URL; its
 * URLs must be exactly getSignedUrl's (on a client that adds no checksum of its own), for AWS and
 * for S3-compatible endpoints alike.
 */
describe.each(Object.entries(CLIENTS))('S3UrlSigner on %s', (_, { make: makeClient, reference }) => {
  it('presigns GETs exactly as getSignedUrl does, stable for the hour', async () => {
    vi.useFakeTimers({ now: new Date('2026-11-26T10:17:00Z'), toFake: ['Date'] });
    const client = makeClient();
    const signer = new S3UrlSigner(client);
    const url = await signer.presignGet('variants-bucket', '01JBBBBBBBBBBBBBBBBBBBBBBB/thumb.webp', 3600);
    const expected = await getSignedUrl(
      client,
      new GetObjectCommand({ Bucket: 'variants-bucket', Key: '01JBBBBBBBBBBBBBBBBBBBBBBB/thumb.webp' }),
      { expiresIn: 7200, signingDate: new Date('2026-11-26T10:00:00Z') },
    );
    expect(url).toBe(expected);
    vi.setSystemTime(new Date('2026-11-26T10:59:59Z'));
    expect(await signer.presignGet('variants-bucket', '01JBBBBBBBBBBBBBBBBBBBBBBB/thumb.webp', 3600)).toBe(
      url,
    );
  });

  it('addresses any key exactly as getSignedUrl does, whatever characters it holds', async () => {
    vi.useFakeTimers({ now: new Date('2026-11-26T10:17:00Z'), toFake: ['Date'] });
    const client = makeClient();
    const signer = new S3UrlSigner(client);
    const segment = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 6 }),
      fc.constantFrom(' ', '+', '%', "!'()*~", 'é', '😀', '?#', '&='),
    );
    const key = fc
      .array(
        fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('')),
        {
          minLength: 1,
          maxLength: 4,
        },
      )
      .map((segments) => segments.join('/'))
      .filter((k) => k !== '');
    await fc.assert(
      fc.asyncProperty(key, async (k) => {
        const expected = await getSignedUrl(
          client,
          new GetObjectCommand({ Bucket: 'variants-bucket', Key: k }),
          {
            expiresIn: 7200,
            signingDate: new Date('2026-11-26T10:00:00Z'),
          },
        );
        expect(await signer.presignGet('variants-bucket', k, 3600)).toBe(expected);
      }),
      { seed: 20_261_201, numRuns: 60 },
    );
  });

  it.each([
    ['with a checksum', SHA],
    ['without a checksum', undefined],
  ])('presigns PUTs %s exactly as getSignedUrl does', async (_, sha256Hex) => {
    vi.useFakeTimers({ now: new Date('2026-11-26T10:17:00Z'), toFake: ['Date'] });
    const signer = new S3UrlSigner(makeClient());
    // A first URL builds the template; the second (another key, type, size) must still be exact.
    await signer.presignPut({
      bucket: 'uploads-bucket',
      key: `${KEY}-first`,
      contentType: 'image/png',
      contentLength: 1,
      sha256Hex,
      expiresInSeconds: 900,
    });
    const upload = await signer.presignPut({
      bucket: 'uploads-bucket',
      key: KEY,
      contentType: 'image/jpeg',
      contentLength: 2_483_211,
      sha256Hex,
      expiresInSeconds: 900,
    });
    const checksum = sha256Hex ? Buffer.from(sha256Hex, 'hex').toString('base64') : undefined;
    const expected = await getSignedUrl(
      reference(),
      new PutObjectCommand({
        Bucket: 'uploads-bucket',
        Key: KEY,
        ContentType: 'image/jpeg',
        ContentLength: 2_483_211,
        ...(checksum ? { ChecksumSHA256: checksum } : {}),
        Tagging: `${INCOMING_TAG.key}=${INCOMING_TAG.value}`,
      }),
      {
        expiresIn: 900,
        signableHeaders: new Set(['content-type', 'content-length']),
        unhoistableHeaders: new Set(['x-amz-checksum-sha256', 'x-amz-tagging']),
      },
    );
    expect(upload.method).toBe('PUT');
    expect(upload.url).toBe(expected);
    expect(upload.headers).toEqual({
      'content-type': 'image/jpeg',
      'x-amz-tagging': 'pipeline-state=incoming',
      ...(checksum ? { 'x-amz-checksum-sha256': checksum } : {}),
    });
  });
});

/**
 * Upload URLs exactly as the deployed API function builds them: its configuration (no endpoint,
 * so AWS's virtual-hosted addressing) through `createAdapters`, with credentials from the
 * environment as a Lambda's role provides them. S3 checks every checksum a URL signs against the
 * body, so an upload URL may sign no checksum but the file's own SHA-256.
 */
describe('upload URLs of the deployed configuration', () => {
  const deployedSigner = () => {
    for (const name of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_REQUEST_CHECKSUM_CALCULATION']) {
      vi.stubEnv(name, undefined);
    }
    vi.stubEnv('AWS_ACCESS_KEY_ID', credentials.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', credentials.secretAccessKey);
    const config = parseConfig({
      AWS_REGION: 'eu-west-1',
      TABLE_NAME: 'photo-intake',
      UPLOAD_BUCKET: 'uploads-bucket',
      VARIANTS_BUCKET: 'variants-bucket',
    });
    expect(config.endpoints).toEqual({ s3: undefined, dynamodb: undefined, sqs: undefined });
    return createAdapters(config).signer;
  };
  const checksumParams = (url: string) =>
    [...new URL(url).searchParams.keys()].filter((name) => /checksum/i.test(name)).sort();

  it.each([
    ['without a sha256', undefined],
    ['with a sha256', SHA],
  ])('sign no checksum of their own %s', async (_, sha256Hex) => {
    const signer = deployedSigner();
    for (const [key, size] of [
      [`${KEY}-a`, 1],
      [KEY, 2_483_211],
    ] as const) {
      const upload = await signer.presignPut({
        bucket: 'uploads-bucket',
        key,
        contentType: 'image/jpeg',
        contentLength: size,
        sha256Hex,
        expiresInSeconds: 900,
      });
      const url = new URL(upload.url);
      expect(url.host).toBe('uploads-bucket.s3.eu-west-1.amazonaws.com');
      expect(url.searchParams.has('x-amz-checksum-crc32')).toBe(false);
      expect(url.searchParams.has('x-amz-sdk-checksum-algorithm')).toBe(false);
      // No checksum in the query at all; the file's own SHA-256 travels as a signed header.
      expect(checksumParams(upload.url)).toEqual([]);
      const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
      if (sha256Hex) {
        const checksum = Buffer.from(sha256Hex, 'hex').toString('base64');
        expect(signed).toContain('x-amz-checksum-sha256');
        expect(upload.headers['x-amz-checksum-sha256']).toBe(checksum);
      } else {
        expect(signed.filter((name) => name.includes('checksum'))).toEqual([]);
        expect(Object.keys(upload.headers).sort()).toEqual(['content-type', 'x-amz-tagging']);
      }
    }
  });

  it('sign GET URLs that check nothing a plain GET does not send', async () => {
    const url = await deployedSigner().presignGet(
      'variants-bucket',
      '01JBBBBBBBBBBBBBBBBBBBBBBB/thumb.webp',
      3600,
    );
    const names = checksumParams(url);
    expect(names.filter((name) => name !== 'x-amz-checksum-mode')).toEqual([]);
    expect(new URL(url).searchParams.get('X-Amz-SignedHeaders')).toBe('host');
  });
});

/** What a caller of the signer can tell apart: the URL's host, path, signing date and expiry. */
describe('S3UrlSigner keeps each URL its own', () => {
  const at = (iso: string) => vi.useFakeTimers({ now: new Date(iso), toFake: ['Date'] });
  const put = (bucket: string, key: string, sha256Hex?: string) => ({
    bucket,
    key,
    contentType: 'image/jpeg',
    contentLength: 10,
    sha256Hex,
    expiresInSeconds: 900,
  });
  const parts = (url: string) => {
    const parsed = new URL(url);
    return {
      host: parsed.host,
      path: parsed.pathname,
      date: parsed.searchParams.get('X-Amz-Date'),
      expires: parsed.searchParams.get('X-Amz-Expires'),
    };
  };

  it('signs GETs of another hour as of that hour, and each bucket, key and validity apart', async () => {
    at('2026-11-26T10:17:00Z');
    const signer = new S3UrlSigner(CLIENTS['AWS (virtual-hosted, SDK default checksums)'].make());
    const first = await signer.presignGet('variants-bucket', 'a/thumb.webp', 3600);
    expect(parts(first)).toEqual({
      host: 'variants-bucket.s3.eu-west-1.amazonaws.com',
      path: '/a/thumb.webp',
      date: '20261126T100000Z',
      expires: '7200',
    });
    expect(parts(await signer.presignGet('variants-bucket', 'b/thumb.webp', 3600)).path).toBe(
      '/b/thumb.webp',
    );
    expect(parts(await signer.presignGet('other-bucket', 'a/thumb.webp', 3600)).host).toBe(
      'other-bucket.s3.eu-west-1.amazonaws.com',
    );
    expect(parts(await signer.presignGet('variants-bucket', 'a/thumb.webp', 60)).expires).toBe('3660');
    at('2026-11-26T11:05:00Z');
    expect(parts(await signer.presignGet('variants-bucket', 'a/thumb.webp', 3600)).date).toBe(
      '20261126T110000Z',
    );
  });

  it('signs PUTs for each bucket, with and without a checksum, from the right template', async () => {
    at('2026-11-26T10:17:00Z');
    const signer = new S3UrlSigner(compatibleClient());
    const signedHeaders = (url: string) => new URL(url).searchParams.get('X-Amz-SignedHeaders');
    const a = await signer.presignPut(put('bucket-a', 'k1', SHA));
    const b = await signer.presignPut(put('bucket-b', 'k2'));
    const c = await signer.presignPut(put('bucket-b', 'k3', SHA));
    expect([a, b, c].map((upload) => parts(upload.url).path)).toEqual([
      '/bucket-a/k1',
      '/bucket-b/k2',
      '/bucket-b/k3',
    ]);
    expect(signedHeaders(b.url)).toBe('content-length;content-type;host;x-amz-tagging');
    expect(signedHeaders(c.url)).toBe('content-length;content-type;host;x-amz-checksum-sha256;x-amz-tagging');
  });

  it('starts an upload URL at the time it is given, else at its clock', async () => {
    const signer = new S3UrlSigner(compatibleClient(), { now: () => new Date('2026-11-26T10:17:05Z') });
    const given = await signer.presignPut({
      ...put('bucket-a', 'k'),
      signedAt: new Date('2026-11-26T09:00:00Z'),
    });
    expect(parts(given.url)).toMatchObject({ date: '20261126T090000Z', expires: '900' });
    expect(parts((await signer.presignPut(put('bucket-a', 'k'))).url).date).toBe('20261126T101705Z');
  });

  it('takes a SHA-256 in either case, and refuses one that is not 64 hexadecimal characters', async () => {
    at('2026-11-26T10:17:00Z');
    const signer = new S3UrlSigner(compatibleClient());
    const lower = await signer.presignPut(put('b', 'k', SHA));
    expect(await signer.presignPut(put('b', 'k', SHA.toUpperCase()))).toEqual(lower);
    for (const bad of [SHA.slice(1), `${SHA}a`, `x${SHA}`, `${SHA}x`, 'g'.repeat(64), ' '.repeat(64)]) {
      await expect(signer.presignPut(put('b', 'k', bad))).rejects.toThrow(
        new TypeError('sha256Hex must be 64 hexadecimal characters'),
      );
    }
  });

  it('refuses a GET validity that would go past S3 limit of 7 days, and takes the longest that does not', async () => {
    const signer = new S3UrlSigner(compatibleClient());
    const longest = 604_800 - 3_600;
    expect(parts(await signer.presignGet('b', 'k', longest)).expires).toBe('604800');
    await expect(signer.presignGet('b', 'k', longest + 1)).rejects.toThrow(
      new RangeError('minValiditySeconds must be at most 601200'),
    );
  });

  it('tries again after a failure to build its template, rather than remembering it', async () => {
    let calls = 0;
    const client = new S3Client({
      credentials,
      region: async () => {
        calls += 1;
        if (calls === 1) throw new Error('region not yet available');
        return 'eu-west-1';
      },
    });
    const signer = new S3UrlSigner(client);
    await expect(signer.presignGet('bucket-b', 'k', 60)).rejects.toThrow('region not yet available');
    expect(parts(await signer.presignGet('bucket-b', 'k', 60)).host).toBe(
      'bucket-b.s3.eu-west-1.amazonaws.com',
    );
  });

  it('refuses to hand out an upload URL that signs a header the client would not know to send', async () => {
    const client = compatibleClient();
    client.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-trace'] = '1';
        return next(args);
      },
      { step: 'build', name: 'addTraceHeader' },
    );
    await expect(new S3UrlSigner(client).presignPut(put('b', 'k'))).rejects.toThrow(
      'Presigned upload signs an unexpected header: x-trace',
    );
  });
});

/**
 * The template is the SDK's own request, captured just before signing. Should the SDK (or a
 * middleware on the client) build something the signer cannot address per key, it says so instead
 * of signing a URL for another object or none at all.
 */
describe('S3UrlSigner on a request it cannot use as a template', () => {
  type Args = { request: { path: string } | unknown };
  const cases: [string, (args: Args) => Promise<unknown> | undefined, string][] = [
    [
      'a middleware answers before signing',
      () => Promise.resolve({ response: {}, output: { $metadata: {} } }),
      'The SDK did not reach signing; cannot build a presign template.',
    ],
    [
      'the request is not an HTTP request',
      (args) => {
        args.request = { path: '/' };
        return undefined;
      },
      'The SDK built no HTTP request to presign.',
    ],
    [
      'the path does not end in the key it was given',
      (args) => {
        (args.request as { path: string }).path += '/';
        return undefined;
      },
      'Unexpected template path /variants-bucket/presign-template-key/',
    ],
  ];

  it.each(cases)('refuses when %s', async (_, middleware, reason) => {
    const client = compatibleClient();
    client.middlewareStack.add(
      (next) => async (args) => ((await middleware(args as Args)) ?? next(args)) as ReturnType<typeof next>,
      {
        step: 'build',
        name: 'changeTemplate',
      },
    );
    await expect(new S3UrlSigner(client).presignGet('variants-bucket', 'k', 60)).rejects.toThrow(reason);
  });
});
