import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeEventKey } from '../../functions/shared/notify/s3-events.ts';
import { DynamoImageRecords } from '../../functions/shared/records/image-records.ts';
import { RecordsTable } from '../../functions/shared/records/table.ts';
import type { ImageItem } from '../../functions/shared/records/types.ts';
import { readLocalSettings } from '../../local/settings.ts';
import { type LocalStack, startLocalStack } from '../../local/stack.ts';
import { apiClient, type LocalFile, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import {
  dynamoCall,
  dynamoInternalError,
  dynamoThrottled,
  type FaultProxy,
  s3Get,
  s3InternalError,
  startFaultProxy,
} from '../support/fault-proxy.ts';
import { LOCAL_CREDENTIALS } from '../support/local-clients.ts';
import { removeDir } from '../support/stack-process.ts';

const UPLOADS = 'photo-intake-uploads';
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
    });
    stack = await startLocalStack(settings, (line) => logs.push(line), {
      wrapEndpoint: async (service, endpoint) => {
        const proxy = await startFaultProxy(endpoint);
        proxies[service] = proxy;
        return proxy.endpoint;
      },
    });
    sqs = new SQSClient({ region: 'us-east-1', endpoint: stack.sqsEndpoint, credentials: LOCAL_CREDENTIALS });
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
    await removeDir(dataDir);
  });

  const s3 = () => proxies.s3 as FaultProxy;
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

  async function queueIsDrained() {
    for (let i = 0; i < 200; i++) {
      const { Attributes = {} } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: stack.queueUrl,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      if (
        Attributes.ApproximateNumberOfMessages === '0' &&
        Attributes.ApproximateNumberOfMessagesNotVisible === '0'
      ) {
        return;
      }
      await sleep(100);
    }
    throw new Error('the work queue did not drain');
  }

  const s3Event = (key: string) =>
    JSON.stringify({
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: UPLOADS }, object: { key: encodeEventKey(key), size: 1 } },
        },
      ],
    });

  it('retries an optimizer that fails transiently twice, and the image ends ready', async () => {
    const image = await newImage('faults-a', photos[0] as LocalFile);
    // The SDK tries each call 3 times: 6 failed GETs make two invocations fail.
    const rule = s3().inject({ match: s3Get(UPLOADS, image.key), times: 6, ...s3InternalError });
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
    s3().inject({ match: s3Get(UPLOADS, image.key), times: Number.POSITIVE_INFINITY, ...s3InternalError });
    await image.upload();
    const done = await image.api.waitForBatch(image.batchId, 60_000);
    expect(done.items[0]).toMatchObject({ status: 'failed', error: { code: 'ProcessingFailed' } });
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
    const get = s3().inject({
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
    expect(await image.record()).toMatchObject({ status: 'failed', error: { code: 'ProcessingFailed' } });
  });

  it('gives one outcome for the same S3 event delivered three times', async () => {
    const image = await newImage('faults-f', photos[2] as LocalFile);
    await image.upload();
    // Two more copies of the notification the bridge already sent, at once.
    await Promise.all(
      [1, 2].map(() =>
        sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: s3Event(image.key) })),
      ),
    );
    await image.api.waitForBatch(image.batchId, 60_000);
    await queueIsDrained();
    const first = await image.api.request('GET', `/v1/images/${image.imageId}`);
    expect(first.body.status).toBe('ready');

    // And three more after it is ready: nothing a user can see changes.
    await Promise.all(
      [1, 2, 3].map(() =>
        sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: s3Event(image.key) })),
      ),
    );
    await queueIsDrained();
    const after = await image.api.request('GET', `/v1/images/${image.imageId}`, {
      headers: { 'if-none-match': first.headers.get('etag') as string },
    });
    expect(after.status).toBe(304);
    const record = await image.record();
    expect(record.updatedAt).toBe(first.body.updatedAt);
    expect(record.attempts).toBeLessThanOrEqual(3);
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
    const body = JSON.stringify({
      Service: 'Amazon S3',
      Event: 's3:TestEvent',
      Bucket: UPLOADS,
      RequestId: 'x',
    });
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: body }));
    await queueIsDrained();
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: stack.dlqUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }),
    );
    expect(Messages.some((m) => m.Body?.includes('s3:TestEvent'))).toBe(false);
  });
});
