import { appendFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { DynamoDBRecord } from 'aws-lambda';
import { type RelayDeps, relayStreamRecords } from '../../functions/relay/relay-stream.ts';
import type { EventSink, PipelineEvent } from '../../functions/shared/fate/events.ts';
import { relayOutbox } from '../../functions/shared/fate/outbox.ts';
import type { RecordsTable } from '../../functions/shared/records/table.ts';
import type { InsertedItems } from '../emulators/dynamodb-transactions.ts';

/** Where the local stack's events land: one JSON line each, in `DATA_DIR/events.jsonl`. */
export const eventLogPath = (dataDir: string) => path.join(dataDir, 'events.jsonl');

/**
 * The local stack's events port: appends each event once to a JSON-lines file, dropping repeats by
 * id (a relay that crashed after publishing hands the same events on again), and tells listeners.
 */
export async function fileEventSink(dataDir: string) {
  const file = eventLogPath(dataDir);
  const seen = new Set<string>();
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (line.trim()) seen.add((JSON.parse(line) as PipelineEvent).id);
  }
  const listeners: ((events: readonly PipelineEvent[]) => Promise<void> | void)[] = [];
  const sink: EventSink & { subscribe(listener: (typeof listeners)[number]): void } = {
    async publish(events) {
      const fresh = events.filter((event) => !seen.has(event.id));
      if (fresh.length === 0) return;
      await appendFile(file, fresh.map((event) => `${JSON.stringify(event)}\n`).join(''));
      for (const event of fresh) seen.add(event.id);
      for (const listener of listeners) await listener(fresh);
    },
    subscribe(listener) {
      listeners.push(listener);
    },
  };
  return sink;
}

/**
 * Plays DynamoDB Streams and the relay function: the outbox rows each transaction inserts go to the
 * deployed relay's own code (`relayStreamRecords`) as soon as it commits. A sweep of the whole outbox
 * at start, every `sweepMs` and at stop hands on rows whose delivery failed (Lambda would retry the
 * stream batch) or that a crash left. Runs never overlap; a sink refusing throws and is retried by
 * the next sweep, so events are delivered at least once, in the order they were recorded.
 */
export function startOutboxRelay(
  table: RecordsTable,
  sink: EventSink,
  options: {
    onItemsInserted: (listener: InsertedItems) => void;
    sweepMs: number;
    onError: (error: unknown) => void;
  },
) {
  let stopped = false;
  let current: Promise<unknown> = Promise.resolve();
  const run = (work: () => Promise<unknown>) => {
    current = current.then(work).catch(options.onError);
  };
  const deps: RelayDeps = { sink, deleteRows: (keys) => table.deleteAll(keys) };
  options.onItemsInserted((items) => {
    if (stopped) return;
    const records = items
      .filter((item) => item.TableName === table.name)
      .map(({ Item }) => ({ eventName: 'INSERT', dynamodb: { NewImage: Item } }) as DynamoDBRecord);
    if (records.length > 0) run(() => relayStreamRecords(deps, records));
  });
  const sweep = () => run(() => relayOutbox(table, sink));
  sweep();
  const timer = setInterval(sweep, options.sweepMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await current;
      // What finished since the last run is handed on before the stack stops.
      await relayOutbox(table, sink).catch(options.onError);
    },
  };
}
