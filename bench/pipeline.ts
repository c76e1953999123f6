/**
 * Pipeline benchmark: from the last upload to the app being told the batch is complete (its signed
 * `batch.completed` webhook arriving) on the local stack, against plain sharp
 * making the same variants of the same photos with the same parallelism (the floor). Target: the
 * stack within 1.15x of the floor. Where the time goes comes from the events the stack records
 * (`landedAt`, `startedAt`, `time` of every image) and the client's own clock.
 *
 *   npm run bench -- pipeline [--rounds 3] [--concurrency 2] [--cpu-prof]
 *
 * `--cpu-prof` runs the stack with `node --cpu-prof` and prints where its CPU time went in the
 * counted rounds.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { eventLogPath } from '../local/glue/events.ts';
import {
  apiClient,
  type CreatedBatch,
  type LocalFile,
  loadFile,
  putUpload,
} from '../test/support/api-client.ts';
import { corpusDir } from '../test/support/corpus.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../test/support/webhook-receiver.ts';
import { plainSharpVariants } from './optimizer.ts';
import { monotonicUs, type ProfileWindow, summarizeProfiles } from './support/profile.ts';
import {
  countOption,
  type Log,
  loadAverage,
  type PartResult,
  progress,
  reproduceCommand,
} from './support/report.ts';
import { cpuProfileDir, diffCpu, startBenchStack, threadCpuMs } from './support/stack.ts';
import { distribution } from './support/stats.ts';

/** The local stack's optimizer invocations at once by default (the cores of this machine); the floor
 * runs as many photos at once. */
const CONCURRENCY = 2;

/** The corpus JPEG photos (0.1-8.3 MP), read in place. */
export async function corpusPhotos(): Promise<LocalFile[]> {
  const dir = path.join(corpusDir, 'valid');
  const names = (await readdir(dir)).filter((name) => /\.jpe?g$/i.test(name)).sort();
  return Promise.all(names.map((name) => loadFile(path.join(dir, name))));
}

/** Every photo's variants with plain sharp, `concurrency` photos at a time; wall and CPU ms. */
export async function sharpFloor(
  files: readonly LocalFile[],
  concurrency: number,
): Promise<{ wallMs: number; cpuMs: number }> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < files.length) {
        const file = files[next++] as LocalFile;
        await plainSharpVariants(file.bytes);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - started, cpuMs: (used.user + used.system) / 1000 };
}

export default async function runPipelineBench(log: Log, args: readonly string[] = []): Promise<PartResult> {
  const rounds = countOption(args, '--rounds', 3);
  const concurrency = countOption(args, '--concurrency', CONCURRENCY);
  const profileDir = cpuProfileDir(args, 'pipeline');
  const command = reproduceCommand('pipeline', {
    '--rounds': rounds,
    '--concurrency': concurrency,
    '--cpu-prof': Boolean(profileDir),
  });
  const loadAtStart = loadAverage();
  log(`reproduce: ${command}`);
  log(`load average at start: ${loadAtStart.join(' ')}`);
  const files = await corpusPhotos();
  const megapixels = files.length;
  log(`pipeline: ${files.length} corpus JPEGs, ${rounds} rounds, ${concurrency} at a time`);

  await sharpFloor(files, concurrency); // warm-up: sharp's first calls load codecs
  const floors: number[] = [];
  const floorCpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const { wallMs, cpuMs } = await sharpFloor(files, concurrency);
    floors.push(wallMs);
    floorCpu.push(cpuMs);
  }
  log(
    `  plain sharp: ${floors.map((ms) => ms.toFixed(0)).join(', ')} ms (CPU ${floorCpu.map((ms) => ms.toFixed(0)).join(', ')} ms)`,
  );

  const bench = await startBenchStack({
    env: {
      OPTIMIZER_CONCURRENCY: String(concurrency),
    },
    ...(profileDir ? { cpuProfileDir: profileDir } : {}),
  });
  const receiver = await startWebhookReceiver(bench.stack.webhookSecret);
  const windows: ProfileWindow[] = [];
  /** The stack's CPU per counted round: its main JS thread, and all its threads together. */
  const mainThreadCpu: number[] = [];
  const stackCpu: number[] = [];
  const stackTimes: number[] = [];
  const stages: Record<string, number[]> = {
    'last PUT -> last landed (notification)': [],
    'queue wait (landed -> started), mean': [],
    'processing (started -> final), sum / concurrency': [],
    'idle workers (last final - first start - processing)': [],
    '  of which: a worker idle while images wait (between images)': [],
    '  of which: a worker idle at the end (nothing left to start)': [],
    'last final -> app told by webhook': [],
  };
  try {
    const report = progress(log, 'stack rounds', rounds + 1, 0);
    // Round 0 warms the stack up (module loading, first sharp calls) and is not counted.
    for (let r = 0; r <= rounds; r++) {
      const api = apiClient(bench.stack.url, `pipeline-${r}`);
      const created = await api.request('POST', '/v1/uploads', {
        body: {
          files: files.map(({ name, type, size }) => ({ name, type, size })),
          callbackUrl: receiver.url,
        },
      });
      if (created.status !== 201) throw new Error(`POST /v1/uploads: ${created.status}`);
      const batch = created.body as CreatedBatch;
      await Promise.all(batch.items.map((item, i) => putUpload(item, (files[i] as LocalFile).bytes)));
      const lastUpload = performance.now();
      const windowStart = monotonicUs();
      const threadsBefore = await threadCpuMs(bench.stack.child.pid ?? 0);
      // The app is told by webhook, as apps that wait for many photos are: no polling load on the
      // stack while it works. `at` is when the signed `batch.completed` reached the receiver.
      const told = await completion(receiver, batch.batchId);
      const page = await api.request('GET', `/v1/batches/${batch.batchId}?limit=1`);
      if (!page.body.complete || page.body.counts.ready !== files.length) {
        throw new Error(`not all ready: ${JSON.stringify(page.body.counts)}`);
      }
      const done = told - performance.timeOrigin;
      const threads = diffCpu(await threadCpuMs(bench.stack.child.pid ?? 0), threadsBefore);
      if (r > 0) {
        windows.push({
          name: `round ${r}, last upload to complete`,
          startUs: windowStart,
          endUs: monotonicUs(),
        });
        stackTimes.push(done - lastUpload);
        mainThreadCpu.push(threads.MainThread ?? 0);
        stackCpu.push(Object.values(threads).reduce((a, b) => a + b, 0));
        await breakdown(
          bench.dataDir,
          batch.batchId,
          { lastUpload, done, concurrency, images: files.length },
          stages,
        );
      }
      report(r + 1);
    }
  } finally {
    await receiver.close();
    await bench.close();
  }
  if (profileDir) {
    log(`CPU profile of the stack process (${profileDir}):`);
    for (const line of (await summarizeProfiles(profileDir, windows)).lines) log(line);
  }
  log(
    `  local stack, last upload to batch.completed webhook: ${stackTimes.map((ms) => ms.toFixed(0)).join(', ')} ms`,
  );

  log(
    `  stack CPU per round: ${stackCpu.join(', ')} ms, of which its main thread ${mainThreadCpu.join(', ')} ms`,
  );
  for (const [stage, values] of Object.entries(stages)) {
    log(`  ${stage}: ${values.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  }
  const floorDist = distribution(floors);
  const stackDist = distribution(stackTimes);
  const ratio = stackDist.p50 / floorDist.p50;
  const loadAtEnd = loadAverage();
  log(`load average at end: ${loadAtEnd.join(' ')} (at start ${loadAtStart.join(' ')})`);
  log(`reproduce: ${command}`);
  return {
    lines: [
      { name: 'plain sharp, all photos', unit: 'ms', dist: floorDist },
      { name: 'local stack, last upload to batch.completed webhook', unit: 'ms', dist: stackDist },
      {
        name: 'stack / plain sharp (p50)',
        unit: 'x',
        value: Number(ratio.toFixed(2)),
        target: '<= 1.15',
        pass: ratio <= 1.15,
      },
      { name: 'plain sharp CPU, all photos', unit: 'ms', dist: distribution(floorCpu) },
      { name: 'local stack CPU per round', unit: 'ms', dist: distribution(stackCpu) },
      { name: '  of which its main JS thread', unit: 'ms', dist: distribution(mainThreadCpu) },
      ...Object.entries(stages).map(([stage, values]) => ({
        name: `  ${stage}`,
        unit: 'ms',
        dist: distribution(values),
      })),
    ],
    details: {
      command,
      loadAverage: { start: loadAtStart, end: loadAtEnd },
      photos: files.map((f) => f.name),
      megapixels,
      concurrency,
      floors,
      floorCpu,
      stackTimes,
      stackCpu,
      mainThreadCpu,
    },
  };
}

/**
 * Where one round's time went, from the image events the stack recorded (wall clock, same machine):
 * the client's last PUT against S3's `landedAt`, each image's queue wait and processing, and the
 * time from the last final state to the client's seeing `complete`.
 */
/** When (ms since the epoch) the receiver got the batch's verified `batch.completed`. */
async function completion(receiver: WebhookReceiver, batchId: string): Promise<number> {
  const id = `batch_${batchId}_completed`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const delivery = receiver.deliveries.find((d) => d.id === id);
    if (delivery) {
      if (!delivery.verified) throw new Error(`the webhook ${id} did not verify`);
      return delivery.at;
    }
    if (Date.now() > deadline) throw new Error(`no ${id} webhook within 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function breakdown(
  dataDir: string,
  batchId: string,
  round: { lastUpload: number; done: number; concurrency: number; images: number },
  stages: Record<string, number[]>,
): Promise<void> {
  // performance.now() is relative to this process; turn the client's marks into wall-clock time.
  const toWall = (mark: number) => performance.timeOrigin + mark;
  let events: { batchId: string; type: string; landedAt?: string; startedAt?: string; time: string }[] = [];
  for (let i = 0; i < 100; i++) {
    events = (await readFile(eventLogPath(dataDir), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .filter((event) => event.batchId === batchId && event.type.startsWith('image.'));
    // Wait for every image's event: the relay hands them on a moment after they are recorded.
    if (events.length === round.images && events.every((event) => event.landedAt && event.startedAt)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (events.length !== round.images) {
    throw new Error(
      `the stack recorded ${events.length} of ${round.images} image events for batch ${batchId}`,
    );
  }
  const ms = (iso: string | undefined) => Date.parse(iso ?? '');
  const landed = events.map((e) => ms(e.landedAt));
  const started = events.map((e) => ms(e.startedAt));
  const finished = events.map((e) => ms(e.time));
  const processing = events.map((_, i) => (finished[i] as number) - (started[i] as number));
  const processingSum = processing.reduce((a, b) => a + b, 0);
  const push = (stage: string, value: number) => stages[stage]?.push(value);
  push('last PUT -> last landed (notification)', Math.max(...landed) - toWall(round.lastUpload));
  push(
    'queue wait (landed -> started), mean',
    events.reduce((sum, _, i) => sum + (started[i] as number) - (landed[i] as number), 0) / events.length,
  );
  push('processing (started -> final), sum / concurrency', processingSum / round.concurrency);
  push(
    'idle workers (last final - first start - processing)',
    Math.max(...finished) - Math.min(...started) - processingSum / round.concurrency,
  );
  // Walk the processing intervals: while fewer images are in processing than there are workers, a
  // worker is idle, either because it is between two images (some are still waiting) or because
  // nothing is left to start.
  const lastStart = Math.max(...started);
  const marks = events
    .flatMap((_, i) => [
      { at: started[i] as number, delta: 1 },
      { at: finished[i] as number, delta: -1 },
    ])
    .sort((a, b) => a.at - b.at || a.delta - b.delta);
  let active = 0;
  let between = 0;
  let atEnd = 0;
  for (const [i, mark] of marks.slice(0, -1).entries()) {
    const next = marks[i + 1] as (typeof marks)[number];
    active += mark.delta;
    const idle = Math.max(0, round.concurrency - active) * (next.at - mark.at);
    if (mark.at < lastStart) between += idle;
    else atEnd += idle;
  }
  push('  of which: a worker idle while images wait (between images)', between / round.concurrency);
  push('  of which: a worker idle at the end (nothing left to start)', atEnd / round.concurrency);
  push('last final -> app told by webhook', toWall(round.done) - Math.max(...finished));
}
