import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ApiEvent, apiDepsFrom, handleApiRequest } from '../../../functions/api/router.ts';
import { processMessages, queueDepsFrom } from '../../../functions/optimizer/process-messages.ts';
import { createAdapters } from '../../../functions/shared/adapters.ts';
import { parseConfig } from '../../../functions/shared/config.ts';
import { batchKey, itemKey } from '../../../functions/shared/records/schema.ts';
import { ensureTable, startDynamoServer } from '../../../local/emulators/dynamodb.ts';
import { type S3Server, startS3Server } from '../../../local/emulators/s3.ts';
import { corpusFile } from '../../support/corpus.ts';
import { quietLogger, sqsEvent } from '../../support/fakes.ts';
import { LOCAL_CREDENTIALS } from '../../support/local-clients.ts';

const TABLE = 'settings-test';
const UPLOADS = 'settings-uploads';
const VARIANTS = 'settings-variants';
const DAY_SECONDS = 86_400;
const epochSeconds = (iso: string) => Date.parse(iso) / 1000;
const jpeg = (name: string, size = 1000) => ({ name, type: 'image/jpeg', size });

interface Answer {
  status: number;
  headers: Record<string, string>;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies, checked by each test.
  body: any;
}

/**
 * README settings proved applied on what a user sees: the API (and, for the processing time, the
 * optimizer) built exactly as the deployed handlers build them (`parseConfig` -> `createAdapters` ->
 * `apiDepsFrom` / `queueDepsFrom`) from an environment with the setting changed, over the local S3
 * and DynamoDB servers. The clock is injected into the adapters (one clock for records, quotas and
 * URL signing), so no assertion depends on the hour, the minute or how long a step takes.
 */
describe("settings applied through the handlers' wiring", () => {
  let directory: string;
  let s3: S3Server;
  let dynamo: Awaited<ReturnType<typeof startDynamoServer>>;
  let documents: DynamoDBDocumentClient;
  let owners = 0;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'settings-'));
    s3 = await startS3Server({ directory, buckets: [UPLOADS, VARIANTS], corsAllowedOrigins: ['*'] });
    dynamo = await startDynamoServer({});
    const client = new DynamoDBClient({
      region: 'us-east-1',
      endpoint: dynamo.endpoint,
      credentials: LOCAL_CREDENTIALS,
    });
    await ensureTable(client, TABLE);
    documents = DynamoDBDocumentClient.from(client);
    // What a Lambda's role provides; here the local S3 server's account.
    vi.stubEnv('AWS_ACCESS_KEY_ID', LOCAL_CREDENTIALS.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', LOCAL_CREDENTIALS.secretAccessKey);
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    vi.stubEnv('AWS_PROFILE', undefined);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    documents?.destroy();
    await dynamo?.stop();
    await s3?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  /** The API of a process started with `env`, on a clock the test moves; each call is one request. */
  function startApi(env: Record<string, string>, startsAt: string | number) {
    const clock = { now: typeof startsAt === 'number' ? startsAt : Date.parse(startsAt) };
    const config = parseConfig({
      AWS_REGION: 'us-east-1',
      TABLE_NAME: TABLE,
      UPLOAD_BUCKET: UPLOADS,
      VARIANTS_BUCKET: VARIANTS,
      S3_ENDPOINT: s3.endpoint,
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      ...env,
    });
    const adapters = createAdapters(config, { now: () => new Date(clock.now) });
    const deps = apiDepsFrom(config, adapters, {
      logger: quietLogger,
      metrics: { filesRequested: () => {} },
    });
    const owner = `owner-${++owners}`;
    const request = async (
      routeKey: string,
      options: { body?: unknown; pathParameters?: Record<string, string> } = {},
    ): Promise<Answer> => {
      const event = {
        version: '2.0',
        routeKey,
        rawPath: '/',
        rawQueryString: '',
        headers: {},
        ...(options.pathParameters ? { pathParameters: options.pathParameters } : {}),
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        isBase64Encoded: false,
        requestContext: {
          authorizer: { jwt: { claims: { sub: owner }, scopes: [] } },
        } as unknown as ApiEvent['requestContext'],
      } as ApiEvent;
      const result = await handleApiRequest(deps, event);
      const headers = Object.fromEntries(
        Object.entries(result.headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)]),
      );
      return {
        status: result.statusCode ?? 200,
        headers,
        body: result.body ? JSON.parse(result.body) : undefined,
      };
    };
    const createBatch = (files: unknown[]) => request('POST /v1/uploads', { body: { files } });
    const getImage = (imageId: string) =>
      request('GET /v1/images/{imageId}', { pathParameters: { imageId } });
    return { clock, owner, config, adapters, request, createBatch, getImage };
  }

  /** The rows a batch left in the table, as DynamoDB holds them (TTL attribute included). */
  const rowOf = async (key: { pk: string; sk: string }) =>
    (await documents.send(new GetCommand({ TableName: TABLE, Key: key }))).Item;
  const batchAndItemRows = async (owner: string) =>
    (
      await documents.send(
        new ScanCommand({
          TableName: TABLE,
          FilterExpression: '#owner = :owner AND begins_with(pk, :batch)',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner, ':batch': 'B#' },
        }),
      )
    ).Items ?? [];
  /** The object key an upload URL names. */
  const keyOf = (url: string) => decodeURIComponent(new URL(url).pathname).slice(`/${UPLOADS}/`.length);
  const put = (upload: { method: string; url: string; headers: Record<string, string> }, body: Buffer) =>
    fetch(upload.url, { method: upload.method, headers: upload.headers, body });

  describe('UPLOAD_URL_TTL_SECONDS', () => {
    it('is the lifetime the upload URL signs, and the expiresAt the API answers is exactly its end', async () => {
      const api = startApi({ UPLOAD_URL_TTL_SECONDS: '120' }, '2026-05-01T08:00:00.750Z');
      expect((await api.request('GET /v1/limits')).body.uploadUrlTtlSeconds).toBe(120);

      const created = await api.createBatch([jpeg('a.jpg')]);
      expect(created.status).toBe(201);
      // Signed in the whole second the request came in (what SigV4 can say), and good for 120 s.
      expect(created.body.expiresAt).toBe('2026-05-01T08:02:00.000Z');
      const url = new URL(created.body.items[0].upload.url);
      expect(url.searchParams.get('X-Amz-Date')).toBe('20260501T080000Z');
      expect(url.searchParams.get('X-Amz-Expires')).toBe('120');

      // The image reads pending until then, and expired from then on.
      const { imageId } = created.body.items[0];
      api.clock.now = Date.parse('2026-05-01T08:01:59.999Z');
      expect((await api.getImage(imageId)).body.status).toBe('pending');
      api.clock.now = Date.parse('2026-05-01T08:02:00.001Z');
      expect((await api.getImage(imageId)).body.status).toBe('expired');

      // A fresh URL lives as long, from when it was asked for.
      api.clock.now = Date.parse('2026-05-01T09:30:00.250Z');
      const renewed = await api.request('POST /v1/images/{imageId}/upload', { pathParameters: { imageId } });
      expect(renewed.status).toBe(200);
      expect(renewed.body.expiresAt).toBe('2026-05-01T09:32:00.000Z');
      const renewedUrl = new URL(renewed.body.upload.url);
      expect(renewedUrl.searchParams.get('X-Amz-Date')).toBe('20260501T093000Z');
      expect(renewedUrl.searchParams.get('X-Amz-Expires')).toBe('120');
      expect((await api.getImage(imageId)).body.status).toBe('pending');
    });

    it('is when the storage endpoint stops taking the upload: a URL asked for 60 s ago works with 120, not with 30', async () => {
      const bytes = Buffer.from('sixty seconds ago');
      // The storage endpoint judges expiry by its own clock; the API's is set 60 s behind it.
      const askedAt = Date.now() - 60_000;
      const outcomes: Record<string, number> = {};
      for (const ttl of ['30', '120']) {
        const api = startApi({ UPLOAD_URL_TTL_SECONDS: ttl }, askedAt);
        const created = await api.createBatch([jpeg(`ttl-${ttl}.jpg`, bytes.length)]);
        expect(created.status).toBe(201);
        const response = await put(created.body.items[0].upload, bytes);
        outcomes[ttl] = response.status;
        if (response.status === 403) expect(await response.text()).toContain('Request has expired');
        // Stored exactly when accepted.
        const key = keyOf(created.body.items[0].upload.url);
        expect((await api.adapters.objects.head(UPLOADS, key)) !== undefined).toBe(response.status === 200);
      }
      expect(outcomes).toEqual({ '30': 403, '120': 200 });
    });
  });

  describe('MAX_OPEN_UPLOADS', () => {
    it('refuses the batch that would pass it with 429 QuotaExceeded and Retry-After, and creates nothing', async () => {
      const api = startApi(
        { MAX_OPEN_UPLOADS: '3', UPLOAD_URL_TTL_SECONDS: '120' },
        '2026-05-01T08:00:00.000Z',
      );
      const tooMany = await api.createBatch(['a', 'b', 'c', 'd'].map((n) => jpeg(`${n}.jpg`)));
      expect(tooMany.status).toBe(429);
      expect(tooMany.body.error.code).toBe('QuotaExceeded');
      expect(Number(tooMany.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(await batchAndItemRows(api.owner)).toEqual([]);

      // The whole quota is still free: three fit, and then not one more until a URL runs out.
      const three = await api.createBatch(['a', 'b', 'c'].map((n) => jpeg(`${n}.jpg`)));
      expect(three.status).toBe(201);
      expect(three.body.items.map((item: { status: string }) => item.status)).toEqual([
        'pending',
        'pending',
        'pending',
      ]);
      const rowsWithThree = await batchAndItemRows(api.owner);
      expect(rowsWithThree).toHaveLength(4);
      const oneMore = await api.createBatch([jpeg('d.jpg')]);
      expect(oneMore.status).toBe(429);
      expect(oneMore.body.error.code).toBe('QuotaExceeded');
      // The first of the open URLs runs out in 120 s: that is when to come back.
      expect(oneMore.headers['retry-after']).toBe('120');
      expect(await batchAndItemRows(api.owner)).toEqual(rowsWithThree);

      // And it is the setting, not the default of 5,000, that refused them: a fourth fits under 4.
      const roomier = startApi({ MAX_OPEN_UPLOADS: '4' }, api.clock.now);
      expect((await roomier.createBatch(['a', 'b', 'c', 'd'].map((n) => jpeg(`${n}.jpg`)))).status).toBe(201);
    });
  });

  describe('REQUESTS_PER_MINUTE', () => {
    it('answers request N+1 within the minute with 429 RateLimited and a Retry-After that holds', async () => {
      // Twelve seconds into a minute, with nothing special about the moment: the window slides.
      const api = startApi({ REQUESTS_PER_MINUTE: '5' }, '2026-05-01T08:00:12.000Z');
      const start = api.clock.now;
      // Five requests spread over most of a minute are answered.
      for (const second of [0, 10, 20, 30, 40]) {
        api.clock.now = start + second * 1000;
        expect((await api.request('GET /v1/limits')).status).toBe(200);
      }
      // The sixth, 50 s after the first, is one too many.
      api.clock.now = start + 50_000;
      const limited = await api.request('GET /v1/limits');
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe('RateLimited');
      const retryAfter = Number(limited.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);

      // Coming back after Retry-After the owner is answered again.
      api.clock.now += retryAfter * 1000;
      expect((await api.request('GET /v1/limits')).status).toBe(200);
    });

    it('holds a burst on any route to the setting, not to the default of 1,200, owner by owner', async () => {
      const api = startApi({ REQUESTS_PER_MINUTE: '7' }, '2026-05-01T08:59:59.000Z');
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) {
        const route = ['GET /v1/limits', 'POST /v1/uploads'][i % 2] as string;
        const answer =
          route === 'GET /v1/limits' ? await api.request(route) : await api.createBatch([jpeg('a.jpg')]);
        statuses.push(answer.status);
      }
      expect(statuses).toEqual([200, 201, 200, 201, 200, 201, 200]);
      const eighth = await api.createBatch([jpeg('a.jpg')]);
      expect(eighth.status).toBe(429);
      expect(eighth.body.error.code).toBe('RateLimited');
      expect(
        (await api.request('GET /v1/images/{imageId}', { pathParameters: { imageId: 'x' } })).status,
      ).toBe(429);
      // Another owner has a window of their own.
      const other = startApi({ REQUESTS_PER_MINUTE: '7' }, api.clock.now);
      expect((await other.request('GET /v1/limits')).status).toBe(200);
    });
    it('reads a polled batch beside the rate check, and answers a refused poll with 429 and nothing of the batch', async () => {
      const api = startApi({ REQUESTS_PER_MINUTE: '2' }, '2026-05-01T08:00:12.000Z');
      const created = await api.createBatch([jpeg('a.jpg')]);
      expect(created.status).toBe(201);
      const poll = () =>
        api.request('GET /v1/batches/{batchId}', { pathParameters: { batchId: created.body.batchId } });

      // The rate check is held until the batch record has been read. A poll whose read waited for the
      // check would never be answered; this one is, so it costs one round trip, not two.
      const { quotas, records } = api.adapters;
      const hit = quotas.hit.bind(quotas);
      const getBatch = records.getBatch.bind(records);
      let readStarted = () => {};
      const read = new Promise<void>((resolve) => {
        readStarted = resolve;
      });
      records.getBatch = (batchId) => {
        readStarted();
        return getBatch(batchId);
      };
      quotas.hit = async (...args) => {
        const waited = await Promise.race([
          read.then(() => true),
          new Promise<false>((resolve) => setTimeout(() => resolve(false), 2_000)),
        ]);
        if (!waited) throw new Error('The batch was not read before the rate check answered.');
        return hit(...args);
      };
      const answered = await poll();
      expect(answered.status).toBe(200);
      expect(answered.body.batchId).toBe(created.body.batchId);

      // The third request in the minute is refused, though the batch exists and was read meanwhile.
      const refused = await poll();
      expect(refused.status).toBe(429);
      expect(refused.body).toEqual({ error: expect.objectContaining({ code: 'RateLimited' }) });
      expect(refused.headers.etag).toBeUndefined();
    });
  });

  describe('RECORD_RETENTION_DAYS', () => {
    it('is how long DynamoDB keeps a record that never became ready: its TTL is the moment it stopped + the days; a ready image and its batch have none', async () => {
      const api = startApi(
        { RECORD_RETENTION_DAYS: '2', UPLOAD_URL_TTL_SECONDS: '120' },
        '2026-05-01T08:00:00.000Z',
      );
      const created = await api.createBatch([
        jpeg('waits.jpg'),
        jpeg('fails.jpg'),
        jpeg('ready.jpg'),
        jpeg('renewed.jpg'),
      ]);
      expect(created.status).toBe(201);
      const { batchId, expiresAt } = created.body;
      const [waits, fails, ready, renewed] = created.body.items.map((item: { imageId: string }) => ({
        batchId,
        imageId: item.imageId,
      }));
      // Waiting for bytes: kept 2 days past the moment its URL runs out.
      const untilUnused = epochSeconds(expiresAt) + 2 * DAY_SECONDS;
      expect(epochSeconds(expiresAt)).toBe(epochSeconds('2026-05-01T08:02:00.000Z'));
      expect((await rowOf(batchKey(batchId)))?.expiresAtEpoch).toBe(untilUnused);
      expect((await rowOf(itemKey(batchId, waits.imageId)))?.expiresAtEpoch).toBe(untilUnused);

      // Failed: kept 2 days from when it failed.
      api.clock.now = Date.parse('2026-05-03T17:45:30.000Z');
      await api.adapters.moves.advance(fails, 'processing');
      await api.adapters.moves.settle(fails, {
        status: 'failed',
        error: { code: 'CorruptImage', message: 'x' },
      });
      expect((await rowOf(itemKey(batchId, fails.imageId)))?.expiresAtEpoch).toBe(
        epochSeconds('2026-05-03T17:45:30.000Z') + 2 * DAY_SECONDS,
      );
      // Expired (settled by the reconciler, whenever it runs): still 2 days past its URL's end.
      await api.adapters.moves.settle(waits, { status: 'expired' });
      expect((await rowOf(itemKey(batchId, waits.imageId)))?.expiresAtEpoch).toBe(untilUnused);
      // Given a fresh URL: kept 2 days past the new URL's end, and so is its batch.
      const renew = () =>
        api.request('POST /v1/images/{imageId}/upload', { pathParameters: { imageId: renewed.imageId } });
      const fresh = await renew();
      expect(fresh.body.expiresAt).toBe('2026-05-03T17:47:30.000Z');
      const untilRenewedUnused = epochSeconds(fresh.body.expiresAt) + 2 * DAY_SECONDS;
      expect((await rowOf(itemKey(batchId, renewed.imageId)))?.expiresAtEpoch).toBe(untilRenewedUnused);
      expect((await rowOf(batchKey(batchId)))?.expiresAtEpoch).toBe(untilRenewedUnused);

      // Ready: kept until deleted, and so is the batch that holds it (DELETE and its status need it),
      // even when another of its images is given a fresh URL later.
      await api.adapters.moves.advance(ready, 'processing');
      await api.adapters.moves.settle(ready, {
        status: 'ready',
        facts: { width: 1, height: 1, format: 'jpeg', placeholder: 'x', variants: [] },
      });
      const readyRow = await rowOf(itemKey(batchId, ready.imageId));
      expect(readyRow?.status).toBe('ready');
      expect(readyRow?.expiresAtEpoch).toBeUndefined();
      expect((await rowOf(batchKey(batchId)))?.expiresAtEpoch).toBeUndefined();
      api.clock.now = Date.parse('2026-05-04T09:00:00.000Z');
      const again = await renew();
      expect(again.body.expiresAt).toBe('2026-05-04T09:02:00.000Z');
      expect((await rowOf(itemKey(batchId, renewed.imageId)))?.expiresAtEpoch).toBe(
        epochSeconds('2026-05-04T09:02:00.000Z') + 2 * DAY_SECONDS,
      );
      expect((await rowOf(batchKey(batchId)))?.expiresAtEpoch).toBeUndefined();
    });
  });

  describe('MAX_FILES_PER_BATCH, MAX_BYTES, ACCEPTED_TYPES and VARIANTS', () => {
    it('are the limits GET /v1/limits answers and POST /v1/uploads applies', async () => {
      const variants = [{ name: 'tiny', width: 64, height: 48, format: 'webp', quality: 60 }];
      const api = startApi(
        {
          MAX_FILES_PER_BATCH: '2',
          MAX_BYTES: '5000',
          ACCEPTED_TYPES: 'image/png,image/jpeg',
          VARIANTS: JSON.stringify(variants),
        },
        '2026-05-01T08:00:00.000Z',
      );
      expect((await api.request('GET /v1/limits')).body).toEqual({
        maxFilesPerBatch: 2,
        maxBytes: 5000,
        acceptedTypes: ['image/png', 'image/jpeg'],
        uploadUrlTtlSeconds: 900,
        variants: [{ name: 'tiny', format: 'webp', width: 64, height: 48 }],
      });
      const tooMany = await api.createBatch([jpeg('a.jpg'), jpeg('b.jpg'), jpeg('c.jpg')]);
      expect(tooMany.status).toBe(400);
      expect(tooMany.body.error.code).toBe('TooManyFiles');
      const mixed = await api.createBatch([
        jpeg('big.jpg', 5001),
        { name: 'a.gif', type: 'image/gif', size: 10 },
      ]);
      expect(mixed.status).toBe(201);
      expect(mixed.body.items.map((item: { error?: { code: string } }) => item.error?.code)).toEqual([
        'TooLarge',
        'UnsupportedType',
      ]);
      const fits = await api.createBatch([
        jpeg('fits.jpg', 5000),
        { name: 'a.png', type: 'image/png', size: 10 },
      ]);
      expect(fits.body.items.map((item: { status: string }) => item.status)).toEqual(['pending', 'pending']);
    });
  });

  describe('PROCESSING_TIMEOUT_MS', () => {
    it('is how long the optimizer gives one image: past it the image fails ProcessingTimeout', async () => {
      // A phone's HEIC: its HEVC decode alone takes longer than 100 ms (the setting's least value).
      const photo = await readFile(corpusFile('valid/exif-samples--IMG_5195.HEIC'));
      const outcome = async (env: Record<string, string>) => {
        const api = startApi(env, Date.now());
        const created = await api.createBatch([
          { name: 'phone.heic', type: 'image/heic', size: photo.length },
        ]);
        const item = created.body.items[0];
        expect((await put(item.upload, photo)).status).toBe(200);
        // The optimizer as its handler builds it from the same environment, handed the S3 event.
        const deps = queueDepsFrom(api.config, api.adapters, quietLogger);
        await processMessages(
          deps,
          sqsEvent([{ messageId: 'm', bucket: UPLOADS, key: keyOf(item.upload.url) }]),
        );
        return (await api.getImage(item.imageId)).body;
      };
      expect(await outcome({ PROCESSING_TIMEOUT_MS: '100' })).toMatchObject({
        status: 'failed',
        error: { code: 'ProcessingTimeout' },
      });
      expect(await outcome({})).toMatchObject({ status: 'ready', format: 'heif' });
    });
  });
});
