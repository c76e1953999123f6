import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { RecordsWriteError } from './errors.ts';
import type { BatchPage, ImageRecords, ImageRef, SharedFiles } from './ports.ts';
import {
  batchKey,
  dedupKey,
  ITEM_SK_PREFIX,
  itemKey,
  OPEN_SHARDS,
  openShard,
  TABLE_SCHEMA,
} from './schema.ts';
import {
  type BatchItem,
  type BatchRecord,
  type ErrorInfo,
  type ImageItem,
  type ReadyFacts,
  STATUS_RANK,
  type StoredImageStatus,
  type TransitionResult,
} from './types.ts';

export interface DynamoImageRecordsOptions {
  tableName: string;
  /** How long records of images that will never be ready are kept (TTL), in seconds. */
  retentionSeconds: number;
  /** Attempts per BatchWriteItem chunk, the first included. */
  maxWriteAttempts?: number;
  /** First retry delay; doubles each attempt, with full jitter. */
  baseRetryDelayMs?: number;
  now?: () => Date;
}

const BATCH_WRITE_LIMIT = 25;
const PARALLEL_CHUNKS = 8;
const INTERNAL_ATTRIBUTES = [
  'pk',
  'sk',
  'statusRank',
  'openOwner',
  'openShard',
  TABLE_SCHEMA.ttlAttribute,
] as const;
const BATCH_GET_LIMIT = 100;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const epochSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

/** Maps an image or batch record to and from the single table (see records/schema.ts). */
export class DynamoImageRecords implements ImageRecords {
  readonly #client: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #retentionSeconds: number;
  readonly #maxWriteAttempts: number;
  readonly #baseRetryDelayMs: number;
  readonly #now: () => Date;

  constructor(client: DynamoDBDocumentClient, options: DynamoImageRecordsOptions) {
    this.#client = client;
    this.#table = options.tableName;
    this.#retentionSeconds = options.retentionSeconds;
    this.#maxWriteAttempts = options.maxWriteAttempts ?? 8;
    this.#baseRetryDelayMs = options.baseRetryDelayMs ?? 25;
    this.#now = options.now ?? (() => new Date());
  }

  async createBatch(batch: BatchRecord, items: readonly BatchItem[]): Promise<void> {
    const expiresAtEpoch = epochSeconds(new Date(batch.expiresAt)) + this.#retentionSeconds;
    const rows: Record<string, unknown>[] = [
      { ...batchKey(batch.batchId), ...batch, [TABLE_SCHEMA.ttlAttribute]: expiresAtEpoch },
      ...items.map((item) => this.#toRow(item, expiresAtEpoch)),
    ];
    const chunks: Record<string, unknown>[][] = [];
    for (let i = 0; i < rows.length; i += BATCH_WRITE_LIMIT)
      chunks.push(rows.slice(i, i + BATCH_WRITE_LIMIT));
    for (let i = 0; i < chunks.length; i += PARALLEL_CHUNKS) {
      await Promise.all(chunks.slice(i, i + PARALLEL_CHUNKS).map((chunk) => this.#writeChunk(chunk)));
    }
  }

  async #writeChunk(rows: Record<string, unknown>[]): Promise<void> {
    let requests: NonNullable<BatchWriteCommandOutput['UnprocessedItems']>[string] = rows.map((Item) => ({
      PutRequest: { Item },
    }));
    for (let attempt = 1; ; attempt++) {
      const output = await this.#client.send(
        new BatchWriteCommand({ RequestItems: { [this.#table]: requests } }),
      );
      const left = output.UnprocessedItems?.[this.#table] ?? [];
      if (left.length === 0) return;
      if (attempt >= this.#maxWriteAttempts) {
        throw new RecordsWriteError(
          `${left.length} records were still unprocessed after ${attempt} BatchWriteItem attempts`,
        );
      }
      requests = left;
      await sleep(Math.random() * this.#baseRetryDelayMs * 2 ** (attempt - 1));
    }
  }

  async getBatch(batchId: string): Promise<BatchPage | undefined> {
    const { pk } = batchKey(batchId);
    let batch: BatchRecord | undefined;
    const items: BatchItem[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': pk },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const row of page.Items ?? []) {
        if (typeof row.sk === 'string' && row.sk.startsWith(ITEM_SK_PREFIX))
          items.push(fromRow<BatchItem>(row));
        else batch = fromRow<BatchRecord>(row);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return batch ? { batch, items } : undefined;
  }

  async getImage(imageId: string): Promise<ImageItem | undefined> {
    const { indexName, partitionKey } = TABLE_SCHEMA.indexes.byImage;
    const page = await this.#client.send(
      new QueryCommand({
        TableName: this.#table,
        IndexName: indexName,
        KeyConditionExpression: '#id = :id',
        ExpressionAttributeNames: { '#id': partitionKey },
        ExpressionAttributeValues: { ':id': imageId },
        Limit: 1,
      }),
    );
    const row = page.Items?.[0];
    return row ? fromRow<ImageItem>(row) : undefined;
  }

  async getImageByKey(batchId: string, imageId: string): Promise<ImageItem | undefined> {
    const { Item } = await this.#client.send(
      new GetCommand({ TableName: this.#table, Key: itemKey(batchId, imageId), ConsistentRead: true }),
    );
    return Item && typeof Item.imageId === 'string' ? fromRow<ImageItem>(Item) : undefined;
  }

  advance(
    batchId: string,
    imageId: string,
    to: Extract<StoredImageStatus, 'uploaded' | 'processing'>,
  ): Promise<TransitionResult> {
    const rank = STATUS_RANK[to];
    // Re-entering `processing` is allowed: it is how a retry after a crash or a transient error starts.
    const condition = to === 'processing' ? 'statusRank <= :rank' : 'statusRank < :rank';
    return this.#transition(batchId, imageId, {
      UpdateExpression: `SET #status = :to, statusRank = :rank, updatedAt = :now${
        to === 'processing' ? ' ADD attempts :one' : ''
      }`,
      ConditionExpression: `attribute_exists(pk) AND ${condition}`,
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':to': to,
        ':rank': rank,
        ':now': this.#now().toISOString(),
        ...(to === 'processing' ? { ':one': 1 } : {}),
      },
    });
  }

  async markReady(image: ImageRef, facts: ReadyFacts): Promise<TransitionResult> {
    // A ready image is kept until deleted; with a checksum it enters the sparse dedup index.
    const result = await this.#transition(image.batchId, image.imageId, {
      UpdateExpression:
        'SET #status = :ready, statusRank = :final, updatedAt = :now, width = :w, height = :h, #format = :f, ' +
        'placeholder = :p, variants = :v REMOVE #ttl, #error, openOwner, openShard',
      ConditionExpression: 'attribute_exists(pk) AND statusRank < :final',
      ExpressionAttributeNames: {
        '#status': 'status',
        '#format': 'format',
        '#ttl': TABLE_SCHEMA.ttlAttribute,
        '#error': 'error',
      },
      ExpressionAttributeValues: {
        ':ready': 'ready',
        ':final': STATUS_RANK.ready,
        ':now': this.#now().toISOString(),
        ':w': facts.width,
        ':h': facts.height,
        ':f': facts.format,
        ':p': facts.placeholder,
        ':v': facts.variants,
      },
    });
    if (result.applied && image.sha256) {
      // The first ready image with this checksum lends its files to later uploads of the same bytes.
      const item = result.item;
      const shared: SharedFiles = {
        sha256: image.sha256,
        imageId: item.imageId,
        key: item.key,
        width: facts.width,
        height: facts.height,
        format: facts.format,
        placeholder: facts.placeholder,
        variants: facts.variants,
        refs: 1,
      };
      await conditionHeld(
        this.#client.send(
          new PutCommand({
            TableName: this.#table,
            Item: { ...dedupKey(image.owner, image.sha256), ...toDedupRow(shared) },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        ),
      );
    }
    return result;
  }

  markFailed(batchId: string, imageId: string, error: ErrorInfo): Promise<TransitionResult> {
    return this.#transition(batchId, imageId, {
      UpdateExpression:
        'SET #status = :failed, statusRank = :final, updatedAt = :now, #error = :error, #ttl = :ttl ' +
        'REMOVE openOwner, openShard',
      ConditionExpression: 'attribute_exists(pk) AND statusRank < :final',
      ExpressionAttributeNames: { '#status': 'status', '#error': 'error', '#ttl': TABLE_SCHEMA.ttlAttribute },
      ExpressionAttributeValues: {
        ':failed': 'failed',
        ':final': STATUS_RANK.failed,
        ':now': this.#now().toISOString(),
        ':error': error,
        ':ttl': epochSeconds(this.#now()) + this.#retentionSeconds,
      },
    });
  }

  async findDuplicates(owner: string, sha256s: readonly string[]): Promise<Map<string, SharedFiles>> {
    const found = new Map<string, SharedFiles>();
    const unique = [...new Set(sha256s)];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += BATCH_GET_LIMIT)
      chunks.push(unique.slice(i, i + BATCH_GET_LIMIT));
    await Promise.all(
      chunks.map(async (chunk) => {
        let keys: Record<string, unknown>[] = chunk.map((sha256) => dedupKey(owner, sha256));
        for (let attempt = 1; keys.length > 0; attempt++) {
          const output = await this.#client.send(
            new BatchGetCommand({ RequestItems: { [this.#table]: { Keys: keys, ConsistentRead: true } } }),
          );
          for (const row of output.Responses?.[this.#table] ?? []) {
            const shared = fromDedupRow(row);
            found.set(shared.sha256, shared);
          }
          keys = output.UnprocessedKeys?.[this.#table]?.Keys ?? [];
          if (keys.length > 0 && attempt >= this.#maxWriteAttempts) {
            throw new RecordsWriteError(
              `${keys.length} dedup keys were still unprocessed after ${attempt} attempts`,
            );
          }
          if (keys.length > 0) await sleep(Math.random() * this.#baseRetryDelayMs * 2 ** (attempt - 1));
        }
      }),
    );
    return found;
  }

  async getSharedFiles(owner: string, sha256: string): Promise<SharedFiles | undefined> {
    const { Item } = await this.#client.send(
      new GetCommand({ TableName: this.#table, Key: dedupKey(owner, sha256), ConsistentRead: true }),
    );
    return Item ? fromDedupRow(Item) : undefined;
  }

  async retainSharedFiles(owner: string, sha256: string, count: number): Promise<boolean> {
    return conditionHeld(
      this.#client.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: dedupKey(owner, sha256),
          UpdateExpression: 'ADD refs :n',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':n': count },
        }),
      ),
    );
  }

  async releaseSharedFiles(owner: string, sha256: string): Promise<number> {
    const { Attributes } = await this.#client.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: dedupKey(owner, sha256),
        UpdateExpression: 'ADD refs :minus',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':minus': -1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const remaining = Number(Attributes?.refs ?? 0);
    if (remaining <= 0) {
      // Not deleted if retained again in the meantime: the files are in use after all.
      await conditionHeld(
        this.#client.send(
          new DeleteCommand({
            TableName: this.#table,
            Key: dedupKey(owner, sha256),
            ConditionExpression: 'refs <= :zero',
            ExpressionAttributeValues: { ':zero': 0 },
          }),
        ),
      );
    }
    return remaining;
  }

  async *listStale(updatedBefore: string): AsyncIterable<ImageItem> {
    const { indexName, partitionKey, sortKey } = TABLE_SCHEMA.indexes.byOpenAge;
    for (let shard = 0; shard < OPEN_SHARDS; shard++) {
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await this.#client.send(
          new QueryCommand({
            TableName: this.#table,
            IndexName: indexName,
            KeyConditionExpression: '#shard = :shard AND #updated < :before',
            ExpressionAttributeNames: { '#shard': partitionKey, '#updated': sortKey },
            ExpressionAttributeValues: { ':shard': String(shard), ':before': updatedBefore },
            ExclusiveStartKey: startKey,
          }),
        );
        for (const row of page.Items ?? []) yield fromRow<ImageItem>(row);
        startKey = page.LastEvaluatedKey;
      } while (startKey);
    }
  }

  async touch(batchId: string, imageId: string, status: StoredImageStatus): Promise<boolean> {
    return this.#conditionalUpdate(batchId, imageId, 'SET updatedAt = :now', status);
  }

  async closeExpired(batchId: string, imageId: string): Promise<boolean> {
    return this.#conditionalUpdate(batchId, imageId, 'REMOVE openOwner, openShard', 'pending');
  }

  async #conditionalUpdate(
    batchId: string,
    imageId: string,
    expression: string,
    status: StoredImageStatus,
  ): Promise<boolean> {
    return conditionHeld(
      this.#client.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: itemKey(batchId, imageId),
          UpdateExpression: expression,
          ConditionExpression: '#status = :status',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':status': status,
            ...(expression.includes(':now') ? { ':now': this.#now().toISOString() } : {}),
          },
        }),
      ),
    );
  }

  async deleteImage(batchId: string, imageId: string): Promise<boolean> {
    return conditionHeld(
      this.#client.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: itemKey(batchId, imageId),
          ConditionExpression: 'attribute_exists(pk)',
        }),
      ),
    );
  }

  async #transition(
    batchId: string,
    imageId: string,
    update: Pick<
      ConstructorParameters<typeof UpdateCommand>[0],
      'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    >,
  ): Promise<TransitionResult> {
    try {
      const { Attributes } = await this.#client.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: itemKey(batchId, imageId),
          ReturnValues: 'ALL_NEW',
          ...update,
        }),
      );
      return { applied: true, item: fromRow<ImageItem>(Attributes ?? {}) };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const item = await this.getImageByKey(batchId, imageId);
      return item ? { applied: false, reason: 'stale', item } : { applied: false, reason: 'missing' };
    }
  }

  #toRow(item: BatchItem, expiresAtEpoch: number): Record<string, unknown> {
    const row: Record<string, unknown> = { ...itemKey(item.batchId, item.itemId), ...item };
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

/** Whether a conditional write was applied; a failed condition is an answer, not an error. */
async function conditionHeld(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

function fromRow<T>(row: Record<string, unknown>): T {
  const copy = { ...row };
  for (const attribute of INTERNAL_ATTRIBUTES) delete copy[attribute];
  return copy as T;
}

// A dedup row names its image `sourceImageId`: an `imageId` attribute would put it in the byImage index.
function toDedupRow({ imageId, ...rest }: SharedFiles): Record<string, unknown> {
  return { ...rest, sourceImageId: imageId };
}

function fromDedupRow(row: Record<string, unknown>): SharedFiles {
  const { sourceImageId, ...rest } = fromRow<Record<string, unknown>>(row);
  return { ...rest, imageId: sourceImageId } as SharedFiles;
}
