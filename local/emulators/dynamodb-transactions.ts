import { randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';

/**
 * TransactWriteItems for dynalite, which has no transactions. Every request to the server passes
 * through a readers-writer lock: ordinary requests share it, a transaction holds it alone while it
 * applies its items one by one as conditional writes (through dynalite itself), and undoes the
 * applied ones if a later condition fails, so no other request ever sees half a transaction.
 *
 * Crash safety: before applying, the old image of every item is written to a journal in the data
 * directory; a server that starts and finds a journal restores those images first (the transaction
 * never happened), then removes it. Only what the pipeline uses is supported: Put, Update and
 * Delete items (a ConditionCheck is refused), on tables whose key is `pk` + `sk` or described.
 */
/** Items a committed transaction created, in DynamoDB JSON, as a table's stream reports INSERTs. */
export type InsertedItems = (items: readonly { TableName: string; Item: AttributeMap }[]) => void;

export function addTransactions(
  server: Server,
  options: { endpoint: () => string; directory?: string; onInserted?: InsertedItems },
) {
  const [inner] = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  if (!inner) throw new Error('dynalite has no request handler to wrap');
  server.removeAllListeners('request');
  const bypass = randomUUID();
  const lock = new ReadersWriterLock();
  const journal = options.directory ? path.join(options.directory, 'transaction-journal.json') : undefined;
  const call = (target: string, body: unknown) => callDynalite(options.endpoint(), bypass, target, body);

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers['x-local-transaction'] === bypass) return inner(req, res);
    if (req.headers['x-amz-target'] === 'DynamoDB_20120810.TransactWriteItems') {
      void lock.exclusive(() => transact(req, res, call, journal, options.onInserted));
      return;
    }
    void lock.shared(
      () =>
        new Promise<void>((resolve) => {
          res.once('close', resolve);
          inner(req, res);
        }),
    );
  });

  return {
    /** Rolls back a transaction a crash interrupted; call before the server takes requests. */
    async recover(): Promise<number> {
      if (!journal) return 0;
      let entries: JournalEntry[];
      try {
        entries = JSON.parse(await readFile(journal, 'utf8')) as JournalEntry[];
      } catch {
        return 0;
      }
      await restore(call, entries);
      await rm(journal, { force: true });
      return entries.length;
    },
  };
}

type AttributeMap = Record<string, unknown>;
type Call = (target: string, body: unknown) => Promise<{ status: number; body: Record<string, unknown> }>;

interface TransactItem {
  Put?: { TableName: string; Item: AttributeMap } & AttributeMap;
  Update?: { TableName: string; Key: AttributeMap } & AttributeMap;
  Delete?: { TableName: string; Key: AttributeMap } & AttributeMap;
  ConditionCheck?: unknown;
}

interface JournalEntry {
  TableName: string;
  Key: AttributeMap;
  /** The item before the transaction; absent when there was none. */
  old?: AttributeMap;
}

async function transact(
  req: IncomingMessage,
  res: ServerResponse,
  call: Call,
  journal: string | undefined,
  onInserted: InsertedItems | undefined,
): Promise<void> {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify(body));
  };
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const { TransactItems: items } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      TransactItems: TransactItem[];
    };
    if (
      !Array.isArray(items) ||
      items.length === 0 ||
      items.length > 100 ||
      items.some((i) => i.ConditionCheck)
    ) {
      send(400, {
        __type: 'com.amazon.coral.validate#ValidationException',
        message:
          'TransactItems must hold 1-100 Put, Update or Delete items (ConditionCheck is not emulated).',
      });
      return;
    }
    const targets = await Promise.all(items.map((item) => keyOf(call, item)));
    const entries = await oldImages(call, targets);
    if (journal) await writeFile(journal, JSON.stringify(entries));
    const reasons = items.map(() => ({ Code: 'None' }) as { Code: string; Message?: string });
    let failure: { status: number; body: Record<string, unknown> } | undefined;
    let applied = 0;
    for (const [index, item] of items.entries()) {
      const [target, request] = item.Put
        ? ['PutItem', item.Put]
        : item.Update
          ? ['UpdateItem', item.Update]
          : ['DeleteItem', item.Delete];
      const answer = await call(target, request);
      if (answer.status === 200) {
        applied++;
        continue;
      }
      failure = answer;
      if (String(answer.body.__type).endsWith('ConditionalCheckFailedException')) {
        reasons[index] = { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' };
      }
      break;
    }
    if (failure) await restore(call, entries.slice(0, applied));
    if (journal) await rm(journal, { force: true });
    if (!failure) {
      send(200, {});
      // What a stream on the table would report: the Puts of items that did not exist before.
      const inserted = items.flatMap((item, i) => (item.Put && !entries[i]?.old ? [item.Put] : []));
      if (inserted.length > 0) onInserted?.(inserted.map(({ TableName, Item }) => ({ TableName, Item })));
    } else if (reasons.some((r) => r.Code !== 'None')) {
      send(400, {
        __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
        message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
        CancellationReasons: reasons,
      });
    } else {
      send(failure.status, failure.body);
    }
  } catch (error) {
    send(500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(error) });
  }
}

/** Every target item as it is now, read in one BatchGetItem per table (items the response leaves
 * unprocessed are asked for again). */
async function oldImages(call: Call, targets: readonly { TableName: string; Key: AttributeMap }[]) {
  const found = new Map<string, AttributeMap>();
  const id = (table: string, key: AttributeMap) =>
    `${table} ${JSON.stringify(Object.entries(key).sort(([a], [b]) => a.localeCompare(b)))}`;
  let wanted: Record<string, { Keys: AttributeMap[]; ConsistentRead: true }> = {};
  for (const { TableName, Key } of targets) {
    wanted[TableName] ??= { Keys: [], ConsistentRead: true };
    const keys = wanted[TableName].Keys;
    if (!keys.some((k) => id(TableName, k) === id(TableName, Key))) keys.push(Key);
  }
  const keyNames = new Map(targets.map(({ TableName, Key }) => [TableName, Object.keys(Key)]));
  while (Object.keys(wanted).length > 0) {
    const { status, body } = await call('BatchGetItem', { RequestItems: wanted });
    if (status !== 200) throw new Error(`BatchGetItem failed: ${JSON.stringify(body)}`);
    for (const [table, items] of Object.entries((body.Responses ?? {}) as Record<string, AttributeMap[]>)) {
      const names = keyNames.get(table) ?? [];
      for (const item of items)
        found.set(id(table, Object.fromEntries(names.map((n) => [n, item[n]]))), item);
    }
    wanted = (body.UnprocessedKeys ?? {}) as typeof wanted;
  }
  return targets.map(({ TableName, Key }): JournalEntry => {
    const old = found.get(id(TableName, Key));
    return old ? { TableName, Key, old } : { TableName, Key };
  });
}

/** Puts back the images a journal holds (deleting items that did not exist). */
async function restore(call: Call, entries: readonly JournalEntry[]): Promise<void> {
  for (const { TableName, Key, old } of [...entries].reverse()) {
    if (old) await call('PutItem', { TableName, Item: old });
    else await call('DeleteItem', { TableName, Key });
  }
}

const keyAttributes = new Map<string, Promise<string[]>>();

async function keyOf(call: Call, item: TransactItem): Promise<{ TableName: string; Key: AttributeMap }> {
  const operation = item.Put ?? item.Update ?? item.Delete;
  if (!operation) throw new Error('empty transaction item');
  if (!item.Put) return { TableName: operation.TableName, Key: (operation as { Key: AttributeMap }).Key };
  let names = keyAttributes.get(item.Put.TableName);
  if (!names) {
    names = call('DescribeTable', { TableName: item.Put.TableName }).then(({ body }) =>
      ((body.Table as { KeySchema: { AttributeName: string }[] }).KeySchema ?? []).map(
        (k) => k.AttributeName,
      ),
    );
    keyAttributes.set(item.Put.TableName, names);
  }
  const Key = Object.fromEntries((await names).map((name) => [name, item.Put?.Item[name]]));
  return { TableName: item.Put.TableName, Key };
}

/** Connections to dynalite itself, kept open between calls. */
const agent = new http.Agent({ keepAlive: true });

function callDynalite(
  endpoint: string,
  bypass: string,
  target: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      endpoint,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'content-length': Buffer.byteLength(payload),
          'x-amz-target': `DynamoDB_20120810.${target}`,
          'x-amz-date': '20260101T000000Z',
          authorization:
            'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=local',
          'x-local-transaction': bypass,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          try {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: response.statusCode ?? 0, body: text ? JSON.parse(text) : {} });
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

/** Many readers or one writer; a waiting writer goes before readers that arrive after it. */
class ReadersWriterLock {
  #readers = 0;
  #writer = false;
  #queue: { exclusive: boolean; start: () => void }[] = [];

  shared<T>(work: () => Promise<T>): Promise<T> {
    return this.#run(false, work);
  }

  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.#run(true, work);
  }

  async #run<T>(exclusive: boolean, work: () => Promise<T>): Promise<T> {
    await new Promise<void>((start) => {
      this.#queue.push({ exclusive, start });
      this.#next();
    });
    try {
      return await work();
    } finally {
      if (exclusive) this.#writer = false;
      else this.#readers--;
      this.#next();
    }
  }

  #next(): void {
    while (this.#queue.length > 0 && !this.#writer) {
      const head = this.#queue[0] as { exclusive: boolean; start: () => void };
      if (head.exclusive) {
        if (this.#readers > 0) return;
        this.#queue.shift();
        this.#writer = true;
        head.start();
        return;
      }
      this.#queue.shift();
      this.#readers++;
      head.start();
    }
  }
}
