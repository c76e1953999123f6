import { appendFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { EventSink, PipelineEvent } from '../../functions/shared/fate/events.ts';
import { relayOutbox } from '../../functions/shared/fate/outbox.ts';
import type { RecordsTable } from '../../functions/shared/records/table.ts';

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

/** Plays the deployed outbox stream: relays recorded events every `intervalMs`; runs never overlap. */
export function startOutboxRelay(
  table: RecordsTable,
  sink: EventSink,
  intervalMs: number,
  onError: (error: unknown) => void,
) {
  let stopped = false;
  let current: Promise<unknown> = Promise.resolve();
  const tick = () => {
    if (stopped) return;
    current = relayOutbox(table, sink)
      .catch(onError)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  let timer = setTimeout(tick, 0);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
      // What finished during the last run is handed on before the stack stops.
      await relayOutbox(table, sink).catch(onError);
    },
  };
}
