/**
 * A minimal client of the V8 inspector of the stack process (started with
 * `--inspect=127.0.0.1:0`): forces a full GC and reads `process.memoryUsage()`, so the bench can tell
 * memory the JS heap retains from memory held natively (libvips, LevelDB, SQLite, malloc arenas).
 */
import { writeFile } from 'node:fs/promises';
import { sleep } from './stats.ts';

export interface MemoryReading {
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  arrayBuffersMiB: number;
}

/** Live JS heap objects by kind (`type:constructor`): count and shallow bytes. */
export type HeapCensus = Map<string, { count: number; bytes: number }>;

export interface Inspector {
  /** Full GC, then the process's own memory figures. */
  memoryAfterGc(): Promise<MemoryReading>;
  /** A heap snapshot (which collects garbage first), reduced to a census of live objects; also
   * written to `saveAs` when given (open it in Chrome DevTools, Memory tab, to see retainers). */
  heapCensus(saveAs?: string): Promise<HeapCensus>;
  close(): void;
}

export const INSPECT_OPTION = '--inspect=127.0.0.1:0';

/** Connects to the inspector whose URL the process printed on stderr. */
export async function connectInspector(stderr: () => string, timeoutMs = 10_000): Promise<Inspector> {
  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  while (!url) {
    url = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(stderr())?.[1];
    if (url) break;
    if (Date.now() > deadline) throw new Error('the stack printed no inspector URL');
    await sleep(100);
  }
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  let nextId = 1;
  let chunks: string[] = [];
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as {
      id?: number;
      method?: string;
      params?: { chunk?: string };
      result?: unknown;
      error?: { message: string };
    };
    if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params?.chunk ?? '');
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiter || message.id === undefined) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(message.error.message));
    else waiter.resolve(message.result);
  });
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
  return {
    async memoryAfterGc() {
      await send('HeapProfiler.collectGarbage');
      const result = (await send('Runtime.evaluate', {
        expression: 'JSON.stringify(process.memoryUsage())',
        returnByValue: true,
      })) as { result: { value: string } };
      const usage = JSON.parse(result.result.value) as NodeJS.MemoryUsage;
      return {
        rssMiB: mib(usage.rss),
        heapUsedMiB: mib(usage.heapUsed),
        heapTotalMiB: mib(usage.heapTotal),
        externalMiB: mib(usage.external),
        arrayBuffersMiB: mib(usage.arrayBuffers),
      };
    },
    async heapCensus(saveAs?: string) {
      chunks = [];
      await send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      const text = chunks.join('');
      if (saveAs) await writeFile(saveAs, text);
      const snapshot = JSON.parse(text) as HeapSnapshot;
      chunks = [];
      return census(snapshot);
    },
    close() {
      socket.close();
    },
  };
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

function census(heap: HeapSnapshot): HeapCensus {
  const fields = heap.snapshot.meta.node_fields;
  const types = heap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const result: HeapCensus = new Map();
  for (let i = 0; i < heap.nodes.length; i += width) {
    const type = types[heap.nodes[i + typeAt] as number] ?? '?';
    const named = type === 'object' || type === 'closure' || type === 'native' || type === 'hidden';
    const name = heap.strings[heap.nodes[i + nameAt] as number] ?? '?';
    // A string's name is its text: group strings by shape (digits 9, letters a/A), to see what they are.
    const key = named ? `${type}:${name}` : type === 'string' ? `string:${shape(name)}` : type;
    const entry = result.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += heap.nodes[i + sizeAt] as number;
    result.set(key, entry);
  }
  return result;
}

const shape = (text: string) =>
  text.slice(0, 32).replace(/[0-9]/g, '9').replace(/[A-Z]/g, 'A').replace(/[a-z]/g, 'a').replace(/\s/g, ' ');

/** What grew from one census to the next, largest growth in bytes first. */
export function censusGrowth(before: HeapCensus, after: HeapCensus, top = 15) {
  return [...after]
    .map(([key, now]) => {
      const was = before.get(key) ?? { count: 0, bytes: 0 };
      return { key, count: now.count - was.count, bytes: now.bytes - was.bytes, totalCount: now.count };
    })
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, top);
}
