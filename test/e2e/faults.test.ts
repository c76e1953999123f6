import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoImageRecords } from '../../functions/shared/records/image-records.ts';
import { RecordsTable } from '../../functions/shared/records/table.ts';
import type { ImageItem } from '../../functions/shared/records/types.ts';
import type { VariantFormat } from '../../functions/shared/variants.ts';
import { eventLogPath } from '../../local/glue/events.ts';
import { readLocalSettings } from '../../local/settings.ts';
import { type LocalStack, startLocalStack } from '../../local/stack.ts';
import { apiClient, type LocalFile, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import { sqsEvent } from '../support/fakes.ts';
import {
  dynamoCall,
  dynamoInternalError,
  dynamoThrottled,
  type FaultProxy,
  s3Get,
  s3InternalError,
  startFaultProxy,
} from '../support/fault-proxy.ts';
import { LOCAL_CREDENTIALS, localS3Client } from '../support/local-clients.ts';
import { removeDir } from '../support/stack-process.ts';

const UPLOADS = 'photo-intake-uploads';
const VARIANTS = 'photo-intake-variants';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Faults injected where the handlers meet S3 and DynamoDB (a failing endpoint in front of the real
 * local servers), with the stack in this process and short queue timeouts so retries come fast.
 */
describe('faults and duplicates on the local stack', () => {
  let stack: LocalStack;
  let dataDir: string;
  const proxies: Partial<Record<'s3' | 'dynamodb' | 'sqs', FaultProxy>> = {};
  let sqs: SQSClient;
  let s3: S3Client;
  let records: DynamoImageRecords;
  let photos: LocalFile[];
  const logs: string[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'photo-intake-faults-'));
    const settings = readLocalSettings({
      PORT: '0',
      DATA_DIR: dataDir,
      QUEUE_VISIBILITY_TIMEOUT_SECONDS: '1',
      MAX_RECEIVE_COUNT: '3',
      OPTIMIZER_CONCURRENCY: '2',
      LOG_LEVEL: 'SILENT',
      // The reconciler runs only when a test calls it: what the optimizer decides is its own.
      RECONCILE_INTERVAL_SECONDS: '3600',
    });
    stack = await startLocalStack(settings, (line) => logs.push(line), {
      wrapEndpoint: async (service, endpoint) => {
        const proxy = await startFaultProxy(endpoint);
        proxies[service] = proxy;
        return proxy.endpoint;
      },
    });
    sqs = new SQSClient({ region: 'us-east-1', endpoint: stack.sqsEndpoint, credentials: LOCAL_CREDENTIALS });
    s3 = localS3Client(stack.s3Endpoint);
    const dynamo = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        region: 'us-east-1',
        endpoint: stack.dynamodbEndpoint,
        credentials: LOCAL_CREDENTIALS,
      }),
    );
    records = new DynamoImageRecords(new RecordsTable(dynamo, { tableName: 'photo-intake' }), {
      retentionSeconds: 60,
    });
    photos = await Promise.all(
      ['valid/sharp--Landscape_2.jpg', 'valid/sharp--Landscape_3.jpg', 'valid/sharp--Landscape_4.jpg'].map(
        (f) => loadFile(corpusFile(f)),
      ),
    );
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    await Promise.all(Object.values(proxies).map((proxy) => proxy.stop()));
    sqs?.destroy();
    s3?.destroy();
    await removeDir(dataDir);
  });

  const s3Proxy = () => proxies.s3 as FaultProxy;
  const dynamodb = () => proxies.dynamodb as FaultProxy;

  /** Starts a one-photo batch; returns its ids and a function that uploads it. */
  async function newImage(owner: string, photo: LocalFile) {
    const api = apiClient(stack.apiUrl, owner);
    const batch = await api.createBatch([{ ...photo, sha256: undefined }]);
    const item = batch.items[0];
    if (!item?.imageId) throw new Error('no image');
    const imageId = item.imageId;
    const key = `uploads/${batch.batchId}/${imageId}`;
    return {
      api,
      batchId: batch.batchId,
      imageId,
      key,
      upload: async () => expect((await putUpload(item, photo.bytes)).status).toBe(200),
      record: async () => (await records.getImageByKey(batch.batchId, imageId)) as ImageItem,
    };
  }

  /**
   * The optimizer handler the stack runs (the same module instance), called as Lambda would call it
   * with a redelivered message: the test knows when the delivery is over, whatever else is queued.
   */
  async function deliver(key: string, copies: number) {
    const { handler } = await import('../../functions/optimizer/handler.ts');
    const event = sqsEvent(
      Array.from({ length: copies }, (_, i) => ({ messageId: `copy-${i}`, bucket: UPLOADS, key })),
    );
    return handler(event, {} as never);
  }

  /** The variants of an image as stored: key, bytes, ETag and Last-Modified of each. */
  async function storedVariants(imageId: string) {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: VARIANTS, Prefix: `${imageId}/` }));
    const keys = (listed.Contents ?? []).map((object) => object.Key as string).sort();
    return Promise.all(
      keys.map(async (key) => {
        const head = await s3.send(new HeadObjectCommand({ Bucket: VARIANTS, Key: key }));
        const got = await s3.send(new GetObjectCommand({ Bucket: VARIANTS, Key: key }));
        const bytes = Buffer.from((await got.Body?.transformToByteArray()) ?? []);
        return {
          key,
          etag: head.ETag,
          lastModified: head.LastModified?.toISOString(),
          sha: bytes.toString('base64'),
        };
      }),
    );
  }

  it('retries an optimizer that fails transiently twice, and the image ends ready', async () => {
    const image = await newImage('faults-a', photos[0] as LocalFile);
    // The SDK tries each call 3 times: 6 failed GETs make two invocations fail.
    const rule = s3Proxy().inject({ match: s3Get(UPLOADS, image.key), times: 6, ...s3InternalError });
    await image.upload();
    const done = await image.api.waitForBatch(image.batchId, 60_000);
    expect(done.items[0].status).toBe('ready');
    expect(rule.hits).toBe(6);
    expect((await image.record()).attempts).toBe(3);
  });

  it('survives DynamoDB throttling and errors on the status writes', async () => {
    const image = await newImage('faults-b', photos[1] as LocalFile);
    const throttled = dynamodb().inject({
      match: dynamoCall('TransactWriteItems', image.imageId),
      times: 4,
      ...dynamoThrottled,
    });
    await image.upload();
    const done = await image.api.waitForBatch(image.batchId, 60_000);
    expect(done.items[0].status).toBe('ready');
    expect(throttled.hits).toBe(4);
  });

  it('answers 500 without internals when DynamoDB fails, and recovers', async () => {
    const image = await newImage('faults-c', photos[2] as LocalFile);
    const failing = dynamodb().inject({
      match: dynamoCall('Query'),
      times: Number.POSITIVE_INFINITY,
      ...dynamoInternalError,
    });
    const response = await image.api.request('GET', `/v1/batches/${image.batchId}`);
    failing.times = 0;
    expect(response.status).toBe(500);
    expect(response.body).toEqual({ error: { code: 'InternalError', message: expect.any(String) } });
    expect(JSON.stringify(response.body)).not.toMatch(/dynamo|InternalServerError|at .*\.ts|stack/i);
    expect((await image.api.request('GET', `/v1/batches/${image.batchId}`)).status).toBe(200);
  });

  it('sends a poison message to the DLQ and ends its image ProcessingFailed', async () => {
    const image = await newImage('faults-d', photos[0] as LocalFile);
    s3Proxy().inject({
      match: s3Get(UPLOADS, image.key),
      times: Number.POSITIVE_INFINITY,
      ...s3InternalError,
    });
    await image.upload();
    const done = await image.api.waitForBatch(image.batchId, 60_000);
    expect(done.items[0]).toMatchObject({ status: 'failed', error: { code: 'ProcessingFailed' } });
    // Decided by the optimizer on the last of MAX_RECEIVE_COUNT (3) receives, not by the reconciler
    // (whose timer never runs here, and whose message says so).
    expect(done.items[0].error.message).toContain("the optimizer's last attempt");
    expect(done.items[0].error.message).not.toContain('reconciler');
    expect((await image.record()).attempts).toBe(3);
    // The message itself went on to the DLQ, where operators see it.
    let inDlq = false;
    for (let i = 0; i < 50 && !inDlq; i++) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: stack.dlqUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }),
      );
      inDlq = Messages.some((m) => m.Body?.includes(image.imageId));
      if (!inDlq) await sleep(200);
    }
    expect(inDlq).toBe(true);
  });

  it('lets the reconciler fail what the DLQ holds when the optimizer could not record it', async () => {
    const image = await newImage('faults-e', photos[1] as LocalFile);
    // Neither the object nor the record can be touched: the message ends in the DLQ while the
    // record still says pending. The reconciler finds it there.
    const get = s3Proxy().inject({
      match: s3Get(UPLOADS, image.key),
      times: Number.POSITIVE_INFINITY,
      ...s3InternalError,
    });
    const update = dynamodb().inject({
      match: dynamoCall('TransactWriteItems', image.imageId),
      times: Number.POSITIVE_INFINITY,
      ...dynamoInternalError,
    });
    await image.upload();
    for (let i = 0; i < 100 && update.hits < 3 * 3; i++) await sleep(200);
    await sleep(2_500);
    get.times = 0;
    update.times = 0;
    expect((await image.record()).status).not.toMatch(/ready|failed/);
    const { handler } = await import('../../functions/reconciler/handler.ts');
    const report = await handler({});
    expect(report.failedFromDeadLetters).toBeGreaterThanOrEqual(1);
    const failed = await image.record();
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'ProcessingFailed' } });
    expect(failed.error?.message).toContain('found in the dead-letter queue by the reconciler');
  });

  it('changes nothing when the S3 event of a ready image is delivered again', async () => {
    const image = await newImage('faults-f', photos[2] as LocalFile);
    await image.upload();
    await image.api.waitForBatch(image.batchId, 60_000);
    // The baseline: the image as it stands once ready and once the pipeline's own work on it is over
    // (with a 1 s visibility timeout a slow first delivery may be redelivered, and the inbox upload
    // is removed after the image is ready), before any duplicate arrives.
    const state = async () => ({
      record: await image.record(),
      // The variants and the original kept beside them.
      variants: await storedVariants(image.imageId),
    });
    let settled = await state();
    for (let i = 0; i < 20; i++) {
      await sleep(2_500);
      const now = await state();
      if (JSON.stringify(now) === JSON.stringify(settled)) break;
      settled = now;
    }
    const before = await image.api.request('GET', `/v1/images/${image.imageId}`);
    expect(before.body.status).toBe('ready');
    const record = await image.record();
    const variants = await storedVariants(image.imageId);
    expect(variants.map((v) => v.key)).toEqual(
      [...(record.variants ?? []).map((v) => v.key), record.originalKey as string].sort(),
    );
    expect(
      before.body.variants.map((v: { name: string; format: VariantFormat }) => `${v.name}.${v.format}`),
    ).toEqual((record.variants ?? []).map((v) => `${v.name}.${v.format}`));

    // Three copies in one invocation, and three invocations at once.
    expect((await deliver(image.key, 3)).batchItemFailures).toEqual([]);
    const concurrent = await Promise.all([1, 2, 3].map(() => deliver(image.key, 1)));
    expect(concurrent.flatMap((r) => r.batchItemFailures)).toEqual([]);

    const after = await image.api.request('GET', `/v1/images/${image.imageId}`, {
      headers: { 'if-none-match': before.headers.get('etag') as string },
    });
    expect(after.status).toBe(304);
    const again = await image.record();
    expect(again.attempts).toBe(record.attempts);
    expect(again.updatedAt).toBe(record.updatedAt);
    expect(again.variants).toEqual(record.variants);
    // Variant and kept-original bytes, ETags and Last-Modified: unchanged.
    expect(await storedVariants(image.imageId)).toEqual(variants);
    // And the inbox stays empty: nothing of the duplicates is kept.
    const inbox = await s3.send(new ListObjectsV2Command({ Bucket: UPLOADS, Prefix: image.key }));
    expect(inbox.KeyCount ?? 0).toBe(0);
  });

  it('gives one outcome when duplicates race the first delivery', async () => {
    const image = await newImage('faults-h', photos[1] as LocalFile);
    await image.upload();
    // Two more deliveries while the bridge's own message is being processed.
    const duplicates = await Promise.all([deliver(image.key, 1), deliver(image.key, 1)]);
    expect(duplicates.flatMap((r) => r.batchItemFailures)).toEqual([]);
    const done = await image.api.waitForBatch(image.batchId, 60_000);
    expect(done.items[0].status).toBe('ready');
    // One ready record with one set of variants (and its original) in one folder, told of once.
    const stored = await storedVariants(image.imageId);
    expect(stored.map((v) => v.key)).toHaveLength(done.items[0].variants.length + 1);
    expect(new Set(stored.map((v) => v.key.split('/').slice(0, 2).join('/'))).size).toBe(1);
    const readyEvents = async () =>
      (await readFile(eventLogPath(dataDir), 'utf8').catch(() => ''))
        .split('\n')
        .filter((line) => line.includes(image.imageId) && line.includes('"image.ready"')).length;
    for (let i = 0; i < 50 && (await readyEvents()) === 0; i++) await sleep(100);
    await sleep(1_000);
    expect(await readyEvents()).toBe(1);
  });

  it('queues a stored object whose notification was lost', async () => {
    const image = await newImage('faults-g', photos[0] as LocalFile);
    const lost = (proxies.sqs as FaultProxy).inject({
      match: (req) =>
        req.headers['x-amz-target'] === 'AmazonSQS.SendMessage' && req.body.includes(image.imageId),
      times: Number.POSITIVE_INFINITY,
      status: 500,
      contentType: 'application/x-amz-json-1.0',
      body: JSON.stringify({
        __type: 'com.amazon.coral.service#InternalFailure',
        message: 'internal failure',
      }),
    });
    await image.upload();
    // The notification bridge gives up after its retries; the record stays pending.
    for (let i = 0; i < 100 && !logs.some((line) => line.startsWith('notification:')); i++) await sleep(100);
    lost.times = 0;
    expect((await image.record()).status).toBe('pending');
    const { handler } = await import('../../functions/reconciler/handler.ts');
    const report = await handler({ detail: { missedEventAfterSeconds: 0 } });
    expect(report.queuedMissedEvents).toBeGreaterThanOrEqual(1);
    const done = await image.api.waitForBatch(image.batchId, 60_000);
    expect(done.items[0].status).toBe('ready');
  });

  it('acknowledges s3:TestEvent and moves on', async () => {
    const { handler } = await import('../../functions/optimizer/handler.ts');
    const event = sqsEvent([{ messageId: 'test-event', bucket: UPLOADS, key: 'x' }]);
    const record = event.Records[0];
    if (!record) throw new Error('no record');
    record.body = JSON.stringify({
      Service: 'Amazon S3',
      Event: 's3:TestEvent',
      Bucket: UPLOADS,
      RequestId: 'x',
    });
    expect((await handler(event, {} as never)).batchItemFailures).toEqual([]);
  });
});
