import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  type BatchWriteCommandInput,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { RecordsWriteError } from './errors.ts';
import { TABLE_SCHEMA } from './schema.ts';

export type Row = Record<string, unknown>;
export type Key = { pk: string; sk: string };
export type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];
type WriteRequest = NonNullable<BatchWriteCommandInput['RequestItems']>[string][number];

export interface RecordsTableOptions {
  tableName: string;
  /** Attempts per chunk or transaction, the first included. */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt, with full jitter. */
  baseRetryDelayMs?: number;
  now?: () => Date;
}

const BATCH_WRITE_LIMIT = 25;
const BATCH_GET_LIMIT = 100;
const PARALLEL_CHUNKS = 8;
/** Attributes that exist for keys and indexes; never part of a record as the code sees it. */
const INTERNAL_ATTRIBUTES = ['pk', 'sk', 'statusRank', 'openOwner', 'openShard', TABLE_SCHEMA.ttlAttribute];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const epochSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * The single table, as every records adapter reaches it: chunked batch reads and writes that retry
 * what DynamoDB left unprocessed, paged queries, transactions, and one backoff loop for all of them.
 */
export class RecordsTable {
  readonly client: DynamoDBDocumentClient;
  readonly name: string;
  readonly now: () => Date;
  readonly #maxAttempts: number;
  readonly #baseRetryDelayMs: number;

  constructor(client: DynamoDBDocumentClient, options: RecordsTableOptions) {
    this.client = client;
    this.name = options.tableName;
    this.now = options.now ?? (() => new Date());
    this.#maxAttempts = options.maxAttempts ?? 8;
    this.#baseRetryDelayMs = options.baseRetryDelayMs ?? 25;
  }

  /**
   * Calls `step` with what is left until nothing is, waiting with jittered exponential backoff between
   * attempts; past the last attempt, a `RecordsWriteError` (the service is busy: retry later).
   */
  async #untilDone<T>(what: string, items: T[], step: (left: T[]) => Promise<T[]>): Promise<void> {
    let left = items;
    for (let attempt = 1; left.length > 0; attempt++) {
      left = await step(left);
      if (left.length === 0) return;
      if (attempt >= this.#maxAttempts) {
        throw new RecordsWriteError(
          `${left.length} ${what} were still unprocessed after ${attempt} attempts`,
        );
      }
      await this.backoff(attempt);
    }
  }

  backoff(attempt: number): Promise<void> {
    return sleep(Math.random() * this.#baseRetryDelayMs * 2 ** (attempt - 1));
  }

  /** Writes every row (BatchWriteItem, 25 a request, 8 requests at a time). */
  putAll(rows: readonly Row[]): Promise<void> {
    return this.#writeAll(rows.map((Item) => ({ PutRequest: { Item } })));
  }

  /** Deletes the rows with these keys; absent rows are not an error. */
  deleteAll(keys: readonly Key[]): Promise<void> {
    return this.#writeAll(keys.map((Key) => ({ DeleteRequest: { Key } })));
  }

  async #writeAll(requests: readonly WriteRequest[]): Promise<void> {
    for (const group of chunk(chunk(requests, BATCH_WRITE_LIMIT), PARALLEL_CHUNKS)) {
      await Promise.all(
        group.map((requestsOfChunk) =>
          this.#untilDone('records', requestsOfChunk, async (left) => {
            const output = await this.client.send(
              new BatchWriteCommand({ RequestItems: { [this.name]: left } }),
            );
            return (output.UnprocessedItems?.[this.name] ?? []) as WriteRequest[];
          }),
        ),
      );
    }
  }

  /** Reads the rows with these keys (consistently), in no particular order. */
  async getAll(keys: readonly Key[]): Promise<Row[]> {
    const found: Row[] = [];
    await Promise.all(
      chunk(keys, BATCH_GET_LIMIT).map((keysOfChunk) =>
        this.#untilDone('keys', [...keysOfChunk] as Row[], async (left) => {
          const output = await this.client.send(
            new BatchGetCommand({ RequestItems: { [this.name]: { Keys: left, ConsistentRead: true } } }),
          );
          found.push(...(output.Responses?.[this.name] ?? []));
          return output.UnprocessedKeys?.[this.name]?.Keys ?? [];
        }),
      ),
    );
    return found;
  }

  async get(key: Key): Promise<Row | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.name, Key: key, ConsistentRead: true }),
    );
    return Item;
  }

  /** Every row a query finds, page after page. */
  async *query(input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey'>): AsyncIterable<Row> {
    let startKey: Row | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({ ...input, TableName: this.name, ExclusiveStartKey: startKey }),
      );
      yield* page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  /** One page of a query: at most `limit` rows after `startKey`, and whether more follow. */
  async queryPage(
    input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey' | 'Limit'>,
    limit: number,
    startKey: Row | undefined,
  ): Promise<{ rows: Row[]; more: boolean }> {
    // One row more than asked tells whether another page exists without an empty last page.
    const page = await this.client.send(
      new QueryCommand({ ...input, TableName: this.name, ExclusiveStartKey: startKey, Limit: limit + 1 }),
    );
    const rows = page.Items ?? [];
    return { rows: rows.slice(0, limit), more: rows.length > limit };
  }

  /**
   * Runs one transaction. `true` when it was applied, `false` when a condition refused it; a
   * conflict with a concurrent transaction is retried with backoff.
   */
  async transact(items: TransactItem[]): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(new TransactWriteCommand({ TransactItems: items }));
        return true;
      } catch (error) {
        if (!(error instanceof TransactionCanceledException)) throw error;
        const codes = (error.CancellationReasons ?? []).map((reason) => reason.Code);
        if (codes.includes('ConditionalCheckFailed')) return false;
        if (attempt >= this.#maxAttempts) {
          throw new RecordsWriteError(`A transaction kept conflicting (${codes.join(', ')})`, {
            cause: error,
          });
        }
        await this.backoff(attempt);
      }
    }
  }
}

/** Whether a conditional write was applied; a failed condition is an answer, not an error. */
export async function conditionHeld(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

/** A row as the code sees it: without the key and index attributes. */
export function fromRow<T>(row: Row): T {
  const copy = { ...row };
  for (const attribute of INTERNAL_ATTRIBUTES) delete copy[attribute];
  return copy as T;
}
