import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../../../functions/shared/fate/events.ts';
import { DynamoStatusMoves, type Outcome } from '../../../functions/shared/fate/moves.ts';
import { newId } from '../../../functions/shared/ids.ts';
import { DynamoImageRecords } from '../../../functions/shared/records/image-records.ts';
import {
  batchKey,
  itemKey,
  OPEN_SHARDS,
  outboxPartition,
  TABLE_SCHEMA,
} from '../../../functions/shared/records/schema.ts';
import { RecordsTable, type TransactItem } from '../../../functions/shared/records/table.ts';
import type { BatchRecord, ImageItem, ReadyFacts } from '../../../functions/shared/records/types.ts';
import { ensureTable, startDynamoServer } from '../../../local/emulators/dynamodb.ts';

const TABLE = 'moves-test';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const facts = (width: number): ReadyFacts => ({
  width,
  height: 1,
  format: 'jpeg',
  placeholder: 'x',
  variants: [{ name: 'thumb', format: 'webp', width, height: 1, size: width, key: `k/${width}` }],
});
const READY = (width = 1): Outcome => ({ status: 'ready', facts: facts(width) });
const FAILED: Outcome = { status: 'failed', error: { code: 'CorruptImage', message: 'x' } };

/**
 * A table that lets a test run another move between a move's read and its write: the one
 * interleaving in which only the write's condition stands between the pipeline and a wrong record.
 */
class RacingTable extends RecordsTable {
  #between: (() => Promise<unknown>) | undefined;
  /** Runs `other` after the next move has read, before it writes. */
  interleave(other: () => Promise<unknown>) {
    this.#between = other;
  }
  // Every transaction of the moves goes through transactOrRefusal (transact included).
  override async transactOrRefusal(items: TransactItem[]) {
    const other = this.#between;
    this.#between = undefined;
    if (other) await other();
    return super.transactOrRefusal(items);
  }
  override backoff(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Every conditional write of `DynamoStatusMoves` refuses the move it must refuse. Each test races a
 * move against another at the one moment that matters, so that without the condition the record
 * would end wrong (checked by mutation testing: `npm run mutate`).
 */
describe('status moves refuse what they must, when raced', () => {
  let server: Awaited<ReturnType<typeof startDynamoServer>>;
  let racing: RacingTable;
  let racer: DynamoStatusMoves;
  let moves: DynamoStatusMoves;
  let records: DynamoImageRecords;
  let table: RecordsTable;
  let documents: DynamoDBDocumentClient;

  beforeAll(async () => {
    server = await startDynamoServer({});
    const client = new DynamoDBClient({ region: 'us-east-1', endpoint: server.endpoint, credentials });
    await ensureTable(client, TABLE);
    documents = DynamoDBDocumentClient.from(client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    table = new RecordsTable(documents, { tableName: TABLE });
    racing = new RacingTable(documents, { tableName: TABLE });
    racer = new DynamoStatusMoves(racing, { retentionSeconds: 60 });
    moves = new DynamoStatusMoves(table, { retentionSeconds: 60 });
    records = new DynamoImageRecords(table, { retentionSeconds: 60 });
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A batch of `count` pending images, each its own; returns refs to them. */
  const makeBatch = async (count: number) => {
    const batchId = newId();
    const now = new Date().toISOString();
    const expiresAt = new Date(Date.now() + 600_000).toISOString();
    const items: ImageItem[] = Array.from({ length: count }, (_, index) => {
      const imageId = newId();
      return {
        batchId,
        itemId: imageId,
        imageId,
        index,
        owner: `owner-${batchId}`,
        name: `IMG_${index}.jpg`,
        status: 'pending',
        type: 'image/jpeg',
        size: 10,
        key: `uploads/${batchId}/${imageId}`,
        createdAt: now,
        updatedAt: now,
        uploadExpiresAt: expiresAt,
      };
    });
    const batch: BatchRecord = {
      batchId,
      owner: `owner-${batchId}`,
      createdAt: now,
      expiresAt,
      total: count,
      settled: 0,
      counts: { pending: count, uploaded: 0, processing: 0, ready: 0, failed: 0, rejected: 0, expired: 0 },
      pendingUntil: expiresAt,
      version: 1,
    };
    await records.createBatch(batch, items);
    return { batchId, refs: items.map(({ batchId, imageId }) => ({ batchId, imageId })) };
  };
  const read = async (ref: { batchId: string; imageId: string }) =>
    (await records.getImageByKey(ref.batchId, ref.imageId)) as ImageItem;
  const batchOf = async (batchId: string) => (await records.getBatch(batchId)) as BatchRecord;
  const eventsOf = async (batchId: string) => {
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
  const processing = async (ref: { batchId: string; imageId: string }) => {
    await moves.advance(ref, 'processing');
  };

  // Batches of four: the batch's own condition (not the last open item) still holds after the other
  // move, so only the image's condition stands between the race and a wrong record.
  it('refuses failed -> ready: a late success does not overwrite a failure', async () => {
    const { batchId, refs } = await makeBatch(4);
    const [ref] = refs as [(typeof refs)[0]];
    await processing(ref);
    racing.interleave(() => moves.settle(ref, FAILED));
    expect(await racer.settle(ref, READY())).toMatchObject({
      applied: false,
      reason: 'stale',
      item: { status: 'failed' },
    });
    const item = await read(ref);
    expect(item).toMatchObject({ status: 'failed', error: { code: 'CorruptImage' } });
    expect(item.variants).toBeUndefined();
    expect(await batchOf(batchId)).toMatchObject({
      settled: 1,
      counts: { ready: 0, failed: 1, processing: 0 },
    });
    expect((await eventsOf(batchId)).map((e) => e.type)).toEqual(['image.failed']);
  });

  it('refuses ready -> ready with other variants: the first result stands, told of once', async () => {
    const { batchId, refs } = await makeBatch(4);
    const [ref] = refs as [(typeof refs)[0]];
    await processing(ref);
    racing.interleave(() => moves.settle(ref, READY(100)));
    expect(await racer.settle(ref, READY(200))).toMatchObject({ applied: false, reason: 'stale' });
    expect(await read(ref)).toMatchObject({ status: 'ready', width: 100, variants: [{ width: 100 }] });
    expect(await batchOf(batchId)).toMatchObject({ settled: 1, counts: { ready: 1, processing: 0 } });
    expect((await eventsOf(batchId)).map((e) => e.type)).toEqual(['image.ready']);
  });

  it('refuses ready -> failed when the failure was decided on a stale read', async () => {
    const { refs } = await makeBatch(4);
    const [ref] = refs as [(typeof refs)[0]];
    await processing(ref);
    racing.interleave(() => moves.settle(ref, READY(5)));
    expect((await racer.settle(ref, FAILED)).applied).toBe(false);
    expect(await read(ref)).toMatchObject({ status: 'ready', width: 5 });
  });

  it('refuses a backward move: uploaded after processing', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [ref] = refs as [(typeof refs)[0]];
    racing.interleave(() => moves.advance(ref, 'processing'));
    expect(await racer.advance(ref, 'uploaded')).toMatchObject({ applied: false, reason: 'stale' });
    expect(await read(ref)).toMatchObject({ status: 'processing', attempts: 1 });
    expect((await batchOf(batchId)).counts).toMatchObject({ pending: 1, uploaded: 0, processing: 1 });
  });

  // The reconciler found the object with its record still `pending` and moves it to `uploaded`; the
  // optimizer's notification landed it first. The image landed once: its first landing stands, and
  // the reconciler is told the move was not its own (so it does not queue the image a second time).
  it('refuses uploaded -> uploaded: a second landing keeps the first landedAt and queues nothing', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [ref] = refs as [(typeof refs)[0]];
    const firstLanding = '2026-03-01T10:00:00.000Z';
    const secondLanding = '2026-03-01T10:05:00.000Z';
    // The second move runs on a later clock, so a rewrite would show in `updatedAt` too.
    const laterTable = new RacingTable(documents, {
      tableName: TABLE,
      now: () => new Date(Date.parse(secondLanding) + 1000),
    });
    const later = new DynamoStatusMoves(laterTable, { retentionSeconds: 60 });
    laterTable.interleave(() => moves.advance(ref, 'uploaded', { landedAt: firstLanding }));
    expect(await later.advance(ref, 'uploaded', { landedAt: secondLanding })).toMatchObject({
      applied: false,
      reason: 'stale',
      item: { status: 'uploaded', landedAt: firstLanding },
    });
    const landed = await read(ref);
    const batchAfterLanding = await batchOf(batchId);
    // And again without a race: a duplicate event for an image that already landed.
    expect(await later.advance(ref, 'uploaded', { landedAt: secondLanding })).toMatchObject({
      applied: false,
      reason: 'stale',
    });
    expect(await read(ref)).toEqual(landed);
    expect(landed).toMatchObject({ status: 'uploaded', landedAt: firstLanding });
    expect(await batchOf(batchId)).toEqual(batchAfterLanding);
    expect(batchAfterLanding.counts).toMatchObject({ pending: 1, uploaded: 1 });
  });

  it('refuses a backward move: processing (a retry) after ready', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [ref] = refs as [(typeof refs)[0]];
    await processing(ref);
    racing.interleave(() => moves.settle(ref, READY()));
    expect(await racer.advance(ref, 'processing')).toMatchObject({ applied: false, reason: 'stale' });
    expect(await read(ref)).toMatchObject({ status: 'ready', attempts: 1 });
    expect((await batchOf(batchId)).counts).toMatchObject({ processing: 0, ready: 1 });
  });

  it('refuses to expire an image whose bytes landed meanwhile', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [ref] = refs as [(typeof refs)[0]];
    racing.interleave(() => moves.advance(ref, 'uploaded'));
    expect((await racer.settle(ref, { status: 'expired' })).applied).toBe(false);
    expect((await read(ref)).status).toBe('uploaded');
    expect(await batchOf(batchId)).toMatchObject({ settled: 0, counts: { expired: 0, uploaded: 1 } });
  });

  it('refuses to reopen an image whose bytes landed meanwhile', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [ref] = refs as [(typeof refs)[0]];
    const before = await read(ref);
    racing.interleave(() => moves.advance(ref, 'uploaded'));
    const later = new Date(Date.now() + 3_600_000).toISOString();
    expect((await racer.reopen(ref, later, 5000)).applied).toBe(false);
    expect(await read(ref)).toMatchObject({ status: 'uploaded', uploadExpiresAt: before.uploadExpiresAt });
    expect((await batchOf(batchId)).pendingUntil).not.toBe(later);
  });

  it('refuses to touch work that moved on', async () => {
    const { refs } = await makeBatch(2);
    const [ref] = refs as [(typeof refs)[0]];
    await processing(ref);
    racing.interleave(() => moves.settle(ref, READY()));
    const ready = async () => (await read(ref)).updatedAt;
    expect(await racer.touch(ref, 'processing')).toBe(false);
    const settledAt = await ready();
    expect(await moves.touch(ref, 'processing')).toBe(false);
    expect(await ready()).toBe(settledAt);
  });

  it('completes a batch once when its last two images finish at the same moment', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [a, b] = refs as [(typeof refs)[0], (typeof refs)[0]];
    await processing(a);
    await processing(b);
    // Both read "one of two still open"; b writes first, so a's write is the completing one.
    racing.interleave(() => moves.settle(b, READY()));
    expect((await racer.settle(a, READY())).applied).toBe(true);
    const batch = await batchOf(batchId);
    expect(batch).toMatchObject({ settled: 2, completions: 1, counts: { ready: 2, processing: 0 } });
    expect(batch.completedAt).toBeDefined();
    expect((await eventsOf(batchId)).filter((e) => e.type === 'batch.completed')).toHaveLength(1);
  });

  it('does not complete a batch when an item was reopened after the last move read it', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [a, b] = refs as [(typeof refs)[0], (typeof refs)[0]];
    await processing(a);
    await moves.settle(b, { status: 'expired' });
    // a reads "the last open item"; meanwhile b gets a fresh URL and is open again.
    racing.interleave(() => moves.reopen(b, new Date(Date.now() + 3_600_000).toISOString(), 5000));
    expect((await racer.settle(a, READY())).applied).toBe(true);
    const batch = await batchOf(batchId);
    expect(batch).toMatchObject({ settled: 1, counts: { ready: 1, pending: 1, expired: 0 } });
    expect(batch.completedAt).toBeUndefined();
    expect((await eventsOf(batchId)).filter((e) => e.type === 'batch.completed')).toHaveLength(0);
  });

  it('completes a batch whose other open image was deleted after the last move read it', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [a, b] = refs as [(typeof refs)[0], (typeof refs)[0]];
    await processing(a);
    // a reads "one of two open"; meanwhile b is deleted, so a's move is now the last one.
    racing.interleave(() => moves.remove(b));
    expect((await racer.settle(a, READY())).applied).toBe(true);
    const batch = await batchOf(batchId);
    expect(batch).toMatchObject({ total: 1, settled: 1, completions: 1 });
    expect(batch.completedAt).toBeDefined();
  });

  it('deletes an image that finished while the delete was deciding, with the counts it then had', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [a] = refs as [(typeof refs)[0]];
    await processing(a);
    racing.interleave(() => moves.settle(a, READY()));
    expect(await racer.remove(a)).toMatchObject({ status: 'ready' });
    expect(await read(a)).toBeUndefined();
    expect(await batchOf(batchId)).toMatchObject({
      total: 1,
      settled: 0,
      counts: { ready: 0, processing: 0, pending: 1 },
    });
  });

  it('moves nothing for an image that was deleted after the move read it', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [a] = refs as [(typeof refs)[0]];
    await processing(a);
    racing.interleave(() => moves.remove(a));
    expect(await racer.settle(a, READY())).toEqual({ applied: false, reason: 'missing' });
    expect(await read(a)).toBeUndefined();
    expect(await batchOf(batchId)).toMatchObject({
      total: 1,
      settled: 0,
      counts: { ready: 0, processing: 0 },
    });
  });

  it('gives no TTL back to a batch whose image became ready after a fresh URL was decided', async () => {
    const { batchId, refs } = await makeBatch(2);
    const [a, b] = refs as [(typeof refs)[0], (typeof refs)[0]];
    await processing(a);
    racing.interleave(() => moves.settle(a, READY()));
    expect((await racer.reopen(b, new Date(Date.now() + 3_600_000).toISOString(), 5000)).applied).toBe(true);
    expect(await read(a)).toMatchObject({ status: 'ready' });
    // A ready image is kept until deleted, and so is its batch: no TTL may remove it.
    expect((await table.get(batchKey(batchId)))?.[TABLE_SCHEMA.ttlAttribute]).toBeUndefined();
    expect((await table.get(itemKey(b.batchId, b.imageId)))?.[TABLE_SCHEMA.ttlAttribute]).toBeGreaterThan(0);
  });

  it('settles from the image as the caller saw it, and reads again when that view was stale', async () => {
    const { batchId, refs } = await makeBatch(4);
    const [a, b] = refs as [(typeof refs)[0], (typeof refs)[0]];
    await processing(a);
    await processing(b);
    const seenA = await read(a);
    expect(await moves.settle(a, READY(3), seenA)).toMatchObject({
      applied: true,
      item: { status: 'ready' },
    });

    // b failed meanwhile; a late success holding b's processing record must not overwrite it.
    const seenB = await read(b);
    await moves.settle(b, FAILED);
    expect(await moves.settle(b, READY(5), seenB)).toMatchObject({ applied: false, reason: 'stale' });
    expect(await read(b)).toMatchObject({ status: 'failed' });
    expect(await batchOf(batchId)).toMatchObject({
      settled: 2,
      counts: { ready: 1, failed: 1, processing: 0 },
    });
    expect((await eventsOf(batchId)).map((event) => event.type).sort()).toEqual([
      'image.failed',
      'image.ready',
    ]);
  });

  it("tells the table's stream of each outbox row a committed move inserts, and of nothing a refused move tried", async () => {
    const inserted: string[] = [];
    server.onInserted((items) => {
      for (const { Item } of items) inserted.push(String((Item.sk as { S?: string }).S));
    });
    const { batchId, refs } = await makeBatch(2);
    const [a, b] = refs as [(typeof refs)[0], (typeof refs)[0]];
    await processing(a);
    await processing(b);
    expect(inserted).toEqual([]); // advancing writes no event

    await moves.settle(a, READY());
    await moves.settle(a, FAILED); // refused: a is final
    await moves.settle(b, FAILED);
    expect(inserted).toEqual([
      `img_${a.imageId}_ready`,
      `img_${b.imageId}_failed`,
      `batch_${batchId}_completed`,
    ]);
  });
});
