import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  type KeySchemaElement,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { TABLE_SCHEMA } from '../../functions/shared/records/schema.ts';
import { addTransactions, type InsertedItems } from './dynamodb-transactions.ts';

export interface DynamoServerOptions {
  /** LevelDB directory, reused across restarts; in memory when absent. */
  directory?: string;
  /** Loopback port; 0 (the default) picks a free one. */
  port?: number;
}

export interface DynamoServer {
  /** `http://127.0.0.1:<port>`; any credentials are accepted. */
  endpoint: string;
  /**
   * Plays the table's stream for items that transactions create (the pipeline writes its outbox rows
   * only in transactions): listeners hear of each committed INSERT.
   */
  onInserted(listener: InsertedItems): void;
  stop(): Promise<void>;
}

/**
 * dynalite reads through a stream that, when it ends, calls `iterator.return()` to release the
 * LevelDB iterator; abstract-level 3 iterators have `close()` but no `return()`, so every Query
 * left an open iterator behind (about 90 kB each: a client polling a batch once a second grew the
 * stack by some 300 MB an hour). Giving the iterators the `return()` dynalite expects closes them.
 */
function closeFinishedIterators(): void {
  const fromDynalite = createRequire(createRequire(import.meta.url).resolve('dynalite'));
  type IteratorClass = { prototype: { return?: () => Promise<unknown>; close(): Promise<void> } };
  const level = fromDynalite('abstract-level') as Record<string, IteratorClass>;
  for (const name of ['AbstractIterator', 'AbstractKeyIterator', 'AbstractValueIterator']) {
    const prototype = level[name]?.prototype;
    if (!prototype || typeof prototype.return === 'function') continue;
    prototype.return = async function (this: { close(): Promise<void> }) {
      await this.close();
      return { done: true, value: undefined };
    };
  }
}

/** Starts a DynamoDB-compatible server (dynalite) on 127.0.0.1; tables become ACTIVE at once. */
export async function startDynamoServer(options: DynamoServerOptions = {}): Promise<DynamoServer> {
  closeFinishedIterators();
  const server = dynalite({
    ...(options.directory !== undefined && { path: options.directory }),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  let endpoint = '';
  const listeners: InsertedItems[] = [];
  const transactions = addTransactions(server, {
    endpoint: () => endpoint,
    onInserted: (items) => {
      for (const listener of listeners) listener(items);
    },
    ...(options.directory !== undefined && { directory: options.directory }),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  endpoint = `http://127.0.0.1:${port}`;
  // A transaction a crash cut short is undone before anything else reads the table.
  await transactions.recover();
  return {
    endpoint,
    onInserted: (listener) => listeners.push(listener),
    stop: () =>
      new Promise<void>((resolve, reject) => {
        // dynalite's close also closes LevelDB once the HTTP server has drained.
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}

/** One global secondary index as `TABLE_SCHEMA` describes it. */
interface IndexSchema {
  indexName: string;
  partitionKey: string;
  sortKey?: string;
  projection?: 'ALL' | 'KEYS_ONLY';
}

/**
 * Creates the pipeline's table from `TABLE_SCHEMA` (the key design the CDK stack also uses) unless it
 * exists, and turns on TTL where the server supports it. Every key attribute of that design is a
 * string. A table left by an older schema (other indexes) is refused with a clear error: dynalite
 * cannot add or drop indexes.
 */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const { partitionKey, sortKey } = TABLE_SCHEMA;
  const indexes: IndexSchema[] = Object.values(TABLE_SCHEMA.indexes);
  const existing = await describeIndexes(client, tableName);
  if (existing === undefined) {
    const keyAttributes = new Set<string>([partitionKey, sortKey]);
    for (const index of indexes) {
      keyAttributes.add(index.partitionKey);
      if (index.sortKey) keyAttributes.add(index.sortKey);
    }
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [...keyAttributes].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
        KeySchema: keySchema(partitionKey, sortKey),
        GlobalSecondaryIndexes: indexes.map((index) => ({
          IndexName: index.indexName,
          KeySchema: keySchema(index.partitionKey, index.sortKey),
          Projection: { ProjectionType: index.projection ?? 'ALL' },
        })),
      }),
    );
  } else {
    const wanted = indexes.map((index) => index.indexName).sort();
    if (wanted.join() !== existing.join()) {
      throw new Error(
        `Table ${tableName} has indexes [${existing.join(', ')}] but this version needs ` +
          `[${wanted.join(', ')}]; remove the local data directory to recreate it.`,
      );
    }
  }
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
      }),
    );
  } catch (error) {
    // dynalite implements DescribeTimeToLive but not UpdateTimeToLive (it never expires items), so
    // on the local stack records past their TTL simply stay until deleted.
    if (!isUnknownOperation(error)) throw error;
  }
}

function keySchema(hash: string, range: string | undefined): KeySchemaElement[] {
  return [
    { AttributeName: hash, KeyType: 'HASH' },
    ...(range ? [{ AttributeName: range, KeyType: 'RANGE' as const }] : []),
  ];
}

/** The table's index names, sorted, or `undefined` when there is no such table. */
async function describeIndexes(client: DynamoDBClient, tableName: string): Promise<string[] | undefined> {
  try {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return (Table?.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName ?? '').sort();
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

function isUnknownOperation(error: unknown): boolean {
  return error instanceof Error && error.name === 'UnknownOperationException';
}
