import { batchEventId, imageEventId, type PipelineEvent } from '../fate/events.ts';
import { fromBatchRow, toBatchRow } from './batch-row.ts';
import type { BatchRecords, ImageRecords } from './ports.ts';
import {
  batchIdOf,
  batchKey,
  ITEM_SK_PREFIX,
  itemKey,
  OPEN_SHARDS,
  openShard,
  outboxKey,
  TABLE_SCHEMA,
} from './schema.ts';
import { epochSeconds, fromRow, type RecordsTable, type Row } from './table.ts';
import { type BatchItem, type BatchRecord, type ImageItem, STATUS_RANK } from './types.ts';

/** Batches and images in the single table (see schema.ts). */
export class DynamoImageRecords implements BatchRecords, ImageRecords {
  readonly #table: RecordsTable;
  readonly #retentionSeconds: number;

  constructor(table: RecordsTable, options: { retentionSeconds: number }) {
    this.#table = table;
    this.#retentionSeconds = options.retentionSeconds;
  }

  async createBatch(batch: BatchRecord, items: readonly BatchItem[]): Promise<void> {
    const expiresAtEpoch = epochSeconds(new Date(batch.expiresAt)) + this.#retentionSeconds;
    // Duplicates are ready from the start: they are finished images like any other.
    const events: PipelineEvent[] = items.flatMap((item) =>
      item.status === 'ready'
        ? [
            {
              id: imageEventId(item.imageId, 'ready'),
              type: 'image.ready' as const,
              time: item.createdAt,
              owner: item.owner,
              batchId: item.batchId,
              imageId: item.imageId,
              name: item.name,
            },
          ]
        : [],
    );
    if (batch.completedAt) {
      const { batchId, owner, total, counts, callbackUrl } = batch;
      events.push({
        id: batchEventId(batchId, 1),
        type: 'batch.completed',
        time: batch.completedAt,
        owner,
        batchId,
        total,
        counts,
        ...(callbackUrl ? { callbackUrl } : {}),
      });
    }
    await this.#table.putAll([
      { ...toBatchRow(batch), [TABLE_SCHEMA.ttlAttribute]: expiresAtEpoch },
      ...items.map((item) => this.#toRow(item, expiresAtEpoch)),
      ...events.map((event) => ({ ...outboxKey(event.id), event })),
    ]);
  }

  async getBatch(batchId: string): Promise<BatchRecord | undefined> {
    const row = await this.#table.get(batchKey(batchId));
    return row ? fromBatchRow(row) : undefined;
  }

  async listItems(
    batchId: string,
    page: { limit: number; afterItemId?: string | undefined },
  ): Promise<{ items: BatchItem[]; more: boolean }> {
    const { pk } = batchKey(batchId);
    const { rows, more } = await this.#table.queryPage(
      {
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :items)',
        ExpressionAttributeValues: { ':pk': pk, ':items': ITEM_SK_PREFIX },
        ConsistentRead: true,
      },
      page.limit,
      page.afterItemId ? itemKey(batchId, page.afterItemId) : undefined,
    );
    return { items: rows.map((row) => fromRow<BatchItem>(row)), more };
  }

  async getImage(imageId: string): Promise<ImageItem | undefined> {
    const { indexName, partitionKey } = TABLE_SCHEMA.indexes.byImage;
    const { rows } = await this.#table.queryPage(
      {
        IndexName: indexName,
        KeyConditionExpression: '#id = :id',
        ExpressionAttributeNames: { '#id': partitionKey },
        ExpressionAttributeValues: { ':id': imageId },
      },
      1,
      undefined,
    );
    const found = rows[0];
    // The index holds keys only: the image itself is read by key (and so consistently).
    return found ? this.getImageByKey(batchIdOf(String(found.pk)), imageId) : undefined;
  }

  async getImageByKey(batchId: string, imageId: string): Promise<ImageItem | undefined> {
    const row = await this.#table.get(itemKey(batchId, imageId));
    return row && typeof row.imageId === 'string' ? fromRow<ImageItem>(row) : undefined;
  }

  async *listStale(updatedBefore: string): AsyncIterable<ImageItem> {
    const { indexName, partitionKey, sortKey } = TABLE_SCHEMA.indexes.byOpenAge;
    for (let shard = 0; shard < OPEN_SHARDS; shard++) {
      const rows = this.#table.query({
        IndexName: indexName,
        KeyConditionExpression: '#shard = :shard AND #updated < :before',
        ExpressionAttributeNames: { '#shard': partitionKey, '#updated': sortKey },
        ExpressionAttributeValues: { ':shard': String(shard), ':before': updatedBefore },
      });
      for await (const row of rows) yield fromRow<ImageItem>(row);
    }
  }

  #toRow(item: BatchItem, expiresAtEpoch: number): Row {
    const row: Row = { ...itemKey(item.batchId, item.itemId), ...item };
    if (item.status !== 'rejected') row.statusRank = STATUS_RANK[item.status];
    // Only images still to come count toward the owner's quota of unfinished uploads.
    // Unfinished images are also where the reconciler looks for work that stopped moving.
    if (item.status === 'pending') {
      row.openOwner = item.owner;
      row.openShard = openShard(item.imageId);
    }
    // Ready duplicates are kept like any ready image; everything else expires unless it gets ready.
    if (item.status !== 'ready') row[TABLE_SCHEMA.ttlAttribute] = expiresAtEpoch;
    return row;
  }
}
