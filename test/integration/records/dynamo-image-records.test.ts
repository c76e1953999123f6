import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../../functions/shared/ids.ts';
import { RecordsWriteError } from '../../../functions/shared/records/errors.ts';
import { DynamoImageRecords } from '../../../functions/shared/records/image-records.ts';
import type { BatchItem, ImageItem } from '../../../functions/shared/records/types.ts';
import { ensureTable, startDynamoServer } from '../../../local/emulators/dynamodb.ts';
import {
  dynamoCall,
  type FaultProxy,
  type ProxiedRequest,
  startFaultProxy,
} from '../../support/fault-proxy.ts';

const TABLE = 'records-test';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

describe('DynamoImageRecords against a DynamoDB-compatible server', () => {
  let server: Awaited<ReturnType<typeof startDynamoServer>>;
  let proxy: FaultProxy;
  let records: DynamoImageRecords;
  let throughProxy: DynamoImageRecords;

  beforeAll(async () => {
    server = await startDynamoServer({});
    proxy = await startFaultProxy(server.endpoint);
    const client = new DynamoDBClient({ region: 'us-east-1', endpoint: server.endpoint, credentials });
    await ensureTable(client, TABLE);
    records = new DynamoImageRecords(DynamoDBDocumentClient.from(client), {
      tableName: TABLE,
      retentionSeconds: 60,
    });
    // The same adapter through a failing endpoint, with a short backoff to keep the test quick.
    const proxied = new DynamoDBClient({ region: 'us-east-1', endpoint: proxy.endpoint, credentials });
    throughProxy = new DynamoImageRecords(DynamoDBDocumentClient.from(proxied), {
      tableName: TABLE,
      retentionSeconds: 60,
      maxWriteAttempts: 4,
      baseRetryDelayMs: 1,
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  const makeBatch = async (count: number, owner = 'alice', via = records) => {
    const batchId = newId();
    const now = new Date().toISOString();
    const items: BatchItem[] = Array.from({ length: count }, (_, index) => {
      const itemId = newId();
      return {
        batchId,
        itemId,
        imageId: itemId,
        index,
        owner,
        name: `IMG_${index}.jpg`,
        status: 'pending',
        type: 'image/jpeg',
        size: 100 + index,
        key: `uploads/${batchId}/${itemId}`,
        createdAt: now,
        updatedAt: now,
        uploadExpiresAt: new Date(Date.now() + 60_000).toISOString(),
      } satisfies ImageItem;
    });
    await via.createBatch({ batchId, owner, createdAt: now, expiresAt: now }, items);
    return { batchId, items: items as ImageItem[] };
  };

  it('writes a batch of 500 and reads it back in request order', async () => {
    const { batchId } = await makeBatch(500);
    const page = await records.getBatch(batchId);
    expect(page?.batch.owner).toBe('alice');
    expect(page?.items.map((item) => item.index)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('retries unprocessed BatchWriteItem items until all are written', async () => {
    const rule = proxy.inject({
      match: dynamoCall('BatchWriteItem'),
      times: 3,
      status: 200,
      contentType: 'application/x-amz-json-1.0',
      body: nothingProcessed,
    });
    const { batchId } = await makeBatch(30, 'alice', throughProxy);
    expect(rule.hits).toBe(3);
    expect((await records.getBatch(batchId))?.items).toHaveLength(30);
  });

  it('gives up after a bounded number of attempts with a typed error', async () => {
    const rule = proxy.inject({
      match: dynamoCall('BatchWriteItem'),
      times: Number.POSITIVE_INFINITY,
      status: 200,
      contentType: 'application/x-amz-json-1.0',
      body: nothingProcessed,
    });
    await expect(makeBatch(3, 'alice', throughProxy)).rejects.toBeInstanceOf(RecordsWriteError);
    // One chunk, four attempts (maxWriteAttempts), then the error.
    expect(rule.hits).toBe(4);
    rule.times = 0;
  });

  it('moves an image forward only', async () => {
    const { batchId, items } = await makeBatch(1);
    const imageId = (items[0] as ImageItem).imageId;
    expect((await records.advance(batchId, imageId, 'uploaded')).applied).toBe(true);
    expect((await records.advance(batchId, imageId, 'processing')).applied).toBe(true);
    // A retry re-enters processing and counts the attempt.
    const again = await records.advance(batchId, imageId, 'processing');
    expect(again).toMatchObject({ applied: true, item: { attempts: 2 } });
    expect(await records.advance(batchId, imageId, 'uploaded')).toMatchObject({
      applied: false,
      reason: 'stale',
    });
    const ready = await records.markReady(
      { batchId, imageId, owner: 'alice', sha256: undefined },
      { width: 1, height: 1, format: 'jpeg', placeholder: 'x', variants: [] },
    );
    expect(ready).toMatchObject({ applied: true, item: { status: 'ready' } });
    // Once final, nothing moves it: not a late failure, not a duplicate event.
    expect(await records.markFailed(batchId, imageId, { code: 'CorruptImage', message: 'x' })).toMatchObject({
      applied: false,
      reason: 'stale',
      item: { status: 'ready' },
    });
    expect(await records.advance(batchId, imageId, 'processing')).toMatchObject({
      applied: false,
      reason: 'stale',
    });
  });

  it('finds an image by id and deletes it once', async () => {
    const { batchId, items } = await makeBatch(2);
    const imageId = (items[1] as ImageItem).imageId;
    expect(await records.getImage(imageId)).toMatchObject({ imageId, batchId, index: 1 });
    expect(await records.deleteImage(batchId, imageId)).toBe(true);
    expect(await records.deleteImage(batchId, imageId)).toBe(false);
    expect(await records.getImage(imageId)).toBeUndefined();
    expect(await records.advance(batchId, imageId, 'processing')).toEqual({
      applied: false,
      reason: 'missing',
    });
  });
});

/** DynamoDB's answer when it took none of a BatchWriteItem's items (throttled): all come back unprocessed. */
const nothingProcessed = (req: ProxiedRequest) => {
  const { RequestItems } = JSON.parse(req.body) as { RequestItems: Record<string, unknown[]> };
  return JSON.stringify({ UnprocessedItems: RequestItems });
};
