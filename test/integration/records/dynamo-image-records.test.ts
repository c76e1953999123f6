import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../../../functions/shared/fate/events.ts';
import { DynamoStatusMoves } from '../../../functions/shared/fate/moves.ts';
import { newId } from '../../../functions/shared/ids.ts';
import { RecordsWriteError } from '../../../functions/shared/records/errors.ts';
import { DynamoImageRecords } from '../../../functions/shared/records/image-records.ts';
import { OPEN_SHARDS, outboxPartition } from '../../../functions/shared/records/schema.ts';
import { RecordsTable } from '../../../functions/shared/records/table.ts';
import type { BatchItem, BatchRecord, ImageItem } from '../../../functions/shared/records/types.ts';
import { ensureTable, startDynamoServer } from '../../../local/emulators/dynamodb.ts';
import {
  dynamoCall,
  type FaultProxy,
  type ProxiedRequest,
  startFaultProxy,
} from '../../support/fault-proxy.ts';

const TABLE = 'records-test';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const READY = { width: 1, height: 1, format: 'jpeg', placeholder: 'x', variants: [] };

describe('records and status moves against a DynamoDB-compatible server', () => {
  let server: Awaited<ReturnType<typeof startDynamoServer>>;
  let proxy: FaultProxy;
  let table: RecordsTable;
  let records: DynamoImageRecords;
  let moves: DynamoStatusMoves;
  let throughProxy: DynamoImageRecords;

  beforeAll(async () => {
    server = await startDynamoServer({});
    proxy = await startFaultProxy(server.endpoint);
    const client = new DynamoDBClient({ region: 'us-east-1', endpoint: server.endpoint, credentials });
    await ensureTable(client, TABLE);
    table = new RecordsTable(DynamoDBDocumentClient.from(client), { tableName: TABLE });
    records = new DynamoImageRecords(table, { retentionSeconds: 60 });
    moves = new DynamoStatusMoves(table, { retentionSeconds: 60 });
    // The same adapter through a failing endpoint, with a short backoff to keep the test quick.
    const proxied = new DynamoDBClient({ region: 'us-east-1', endpoint: proxy.endpoint, credentials });
    throughProxy = new DynamoImageRecords(
      new RecordsTable(DynamoDBDocumentClient.from(proxied), {
        tableName: TABLE,
        maxAttempts: 4,
        baseRetryDelayMs: 1,
      }),
      { retentionSeconds: 60 },
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  /** The events recorded in the outbox for one batch. */
  const outboxOf = async (batchId: string): Promise<PipelineEvent[]> => {
    const events: PipelineEvent[] = [];
    for (let shard = 0; shard < OPEN_SHARDS; shard++) {
      for await (const row of table.query({
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': outboxPartition(shard) },
      })) {
        const event = row.event as PipelineEvent;
        if (event.batchId === batchId) events.push(event);
      }
    }
    return events;
  };

  const makeBatch = async (count: number, owner = 'alice', via = records) => {
    const batchId = newId();
    const now = new Date().toISOString();
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
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
        uploadExpiresAt: expiresAt,
      } satisfies ImageItem;
    });
    const batch: BatchRecord = {
      batchId,
      owner,
      createdAt: now,
      expiresAt,
      total: count,
      settled: 0,
      counts: { pending: count, uploaded: 0, processing: 0, ready: 0, failed: 0, rejected: 0, expired: 0 },
      pendingUntil: expiresAt,
      version: 1,
    };
    await via.createBatch(batch, items);
    return { batchId, items: items as ImageItem[] };
  };

  const allItems = async (batchId: string) => (await records.listItems(batchId, { limit: 1000 })).items;

  it('writes a batch of 500 and reads it back in request order, one page at a time', async () => {
    const { batchId } = await makeBatch(500);
    expect((await records.getBatch(batchId))?.owner).toBe('alice');
    expect((await allItems(batchId)).map((item) => item.index)).toEqual(
      Array.from({ length: 500 }, (_, i) => i),
    );
    const first = await records.listItems(batchId, { limit: 100 });
    expect(first.items.map((item) => item.index)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(first.more).toBe(true);
    const last = await records.listItems(batchId, {
      limit: 100,
      afterItemId: (await allItems(batchId))[399]?.itemId,
    });
    expect(last.items.map((item) => item.index)).toEqual(Array.from({ length: 100 }, (_, i) => 400 + i));
    expect(last.more).toBe(false);
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
    expect(await allItems(batchId)).toHaveLength(30);
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
    // One chunk, four attempts (maxAttempts), then the error.
    expect(rule.hits).toBe(4);
    rule.times = 0;
  });

  it('moves an image forward only, and keeps the batch counts with every move', async () => {
    const { batchId, items } = await makeBatch(2);
    const ref = { batchId, imageId: (items[0] as ImageItem).imageId };
    expect((await moves.advance(ref, 'uploaded')).applied).toBe(true);
    expect((await moves.advance(ref, 'processing')).applied).toBe(true);
    // A retry re-enters processing and counts the attempt.
    expect(await moves.advance(ref, 'processing')).toMatchObject({ applied: true, item: { attempts: 2 } });
    expect(await moves.advance(ref, 'uploaded')).toMatchObject({ applied: false, reason: 'stale' });
    expect((await records.getBatch(batchId))?.counts).toMatchObject({ pending: 1, processing: 1 });

    expect(await moves.settle(ref, { status: 'ready', facts: READY })).toMatchObject({
      applied: true,
      item: { status: 'ready' },
    });
    // Once final, nothing moves it: not a late failure, not a second ready, not a duplicate event.
    expect(
      await moves.settle(ref, { status: 'failed', error: { code: 'CorruptImage', message: 'x' } }),
    ).toMatchObject({ applied: false, reason: 'stale', item: { status: 'ready' } });
    expect(await moves.settle(ref, { status: 'ready', facts: { ...READY, width: 2 } })).toMatchObject({
      applied: false,
      reason: 'stale',
      item: { width: 1 },
    });
    expect(await moves.advance(ref, 'processing')).toMatchObject({ applied: false, reason: 'stale' });
    // Expiry only settles an image that is still waiting for its bytes.
    expect(await moves.settle(ref, { status: 'expired' })).toMatchObject({ applied: false });
    const batch = await records.getBatch(batchId);
    expect(batch).toMatchObject({ total: 2, settled: 1, counts: { pending: 1, processing: 0, ready: 1 } });
    expect(batch?.completedAt).toBeUndefined();
  });

  it('completes a batch exactly once, with one event per finished image, under concurrent moves', async () => {
    const { batchId, items } = await makeBatch(12);
    await Promise.all(
      items.map(async (item, i) => {
        const ref = { batchId, imageId: item.imageId };
        await moves.advance(ref, 'processing');
        // Every outcome twice, at once: as when S3 delivers an event twice.
        const outcome =
          i % 3 === 0
            ? ({ status: 'failed', error: { code: 'CorruptImage', message: 'x' } } as const)
            : ({ status: 'ready', facts: READY } as const);
        await Promise.all([moves.settle(ref, outcome), moves.settle(ref, outcome)]);
      }),
    );
    const batch = await records.getBatch(batchId);
    expect(batch).toMatchObject({ total: 12, settled: 12, completions: 1 });
    expect(batch?.counts).toMatchObject({ ready: 8, failed: 4, pending: 0, processing: 0 });
    expect(batch?.completedAt).toBeDefined();
    const events = await outboxOf(batchId);
    expect(events.filter((e) => e.type === 'image.ready')).toHaveLength(8);
    expect(events.filter((e) => e.type === 'image.failed')).toHaveLength(4);
    const completed = events.filter((e) => e.type === 'batch.completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ total: 12, counts: { ready: 8, failed: 4 } });
  });

  it('takes a deleted image out of its batch, and an emptied batch is complete', async () => {
    const { batchId, items } = await makeBatch(2);
    const [first, second] = items as [ImageItem, ImageItem];
    expect(await records.getImage(second.imageId)).toMatchObject({
      imageId: second.imageId,
      batchId,
      index: 1,
    });
    expect(await moves.remove(second)).toMatchObject({ imageId: second.imageId });
    expect(await moves.remove(second)).toBeUndefined();
    expect(await records.getImage(second.imageId)).toBeUndefined();
    expect(await moves.advance(second, 'processing')).toEqual({ applied: false, reason: 'missing' });
    expect(await records.getBatch(batchId)).toMatchObject({ total: 1, settled: 0, counts: { pending: 1 } });
    await moves.remove(first);
    const batch = await records.getBatch(batchId);
    expect(batch).toMatchObject({ total: 0, settled: 0, completions: 1 });
    expect((await outboxOf(batchId)).filter((e) => e.type === 'batch.completed')).toHaveLength(1);
  });

  it('reopens an expired image: the batch is open again and completes a second time', async () => {
    const { batchId, items } = await makeBatch(1);
    const ref = items[0] as ImageItem;
    expect((await moves.settle(ref, { status: 'expired' })).applied).toBe(true);
    expect(await records.getBatch(batchId)).toMatchObject({
      settled: 1,
      completions: 1,
      counts: { expired: 1 },
    });
    const later = new Date(Date.now() + 120_000).toISOString();
    expect(await moves.reopen(ref, later)).toMatchObject({ applied: true, item: { status: 'pending' } });
    const reopened = await records.getBatch(batchId);
    expect(reopened).toMatchObject({ settled: 0, pendingUntil: later, counts: { expired: 0, pending: 1 } });
    expect(reopened?.completedAt).toBeUndefined();
    await moves.advance(ref, 'processing');
    await moves.settle(ref, { status: 'ready', facts: READY });
    const ids = (await outboxOf(batchId)).filter((e) => e.type === 'batch.completed').map((e) => e.id);
    expect(new Set(ids).size).toBe(2);
  });
});

/** DynamoDB's answer when it took none of a BatchWriteItem's items (throttled): all come back unprocessed. */
const nothingProcessed = (req: ProxiedRequest) => {
  const { RequestItems } = JSON.parse(req.body) as { RequestItems: Record<string, unknown[]> };
  return JSON.stringify({ UnprocessedItems: RequestItems });
};
