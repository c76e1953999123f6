/**
 * Load benchmark: bursts of 1,000 uploads (real photos from the shared corpus, each made unique with
 * a JPEG comment) through the local stack, in batches of 500, PUT with bounded concurrency.
 * Reports throughput (images/s from the first PUT to the last `ready`), latency from each PUT's
 * completion to its image's `updatedAt` when ready (server clock, same machine), the stack's peak
 * RSS (sampled every 200 ms, process and children), DATA_DIR growth and temp files left behind.
 * A second round on the same stack shows whether anything grows from burst to burst.
 *
 * The floor, measured in the same run before the first round: plain sharp (`plainSharpVariants`)
 * making the same variants of the same files in this process, as many photos at once as the
 * stack's optimizer invocations, with the optimizer's libvips settings (one thread per pipeline, no
 * operation cache). The stack's throughput is reported as a ratio to it (target >= 0.85).
 *
 *   node bench/load.ts [--images 1000] [--rounds 2] [--photos corpus|large|small] [--concurrency 32]
 *     [--optimizer-concurrency N] [--floor-images N] [--cpu-prof] [--heap-diff] [--stack-env NAME=VALUE ...]
 *
 * `--photos`: `corpus` (default) every valid JPEG photo of the corpus that ends `ready`, as they
 * are (0.1-8.3 MP); `large` only those of at least 2 MP (camera photos, 6-8 MP: about 4x the time);
 * `small` those of at most 300 kB and 1 MP (the figures before 2026-12 used these).
 * `--floor-images` runs the floor on the first N of the round's files instead of all of them.
 *
 * `--heap-diff` takes a heap snapshot of the stack after each round (kept in bench/results/heap-*)
 * and prints which live JS objects grew since the first. Snapshots cost memory: RSS figures of such
 * a run are not comparable.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { apiClient, type CreatedBatch, putUpload, type UploadItem } from '../test/support/api-client.ts';
import { corpusDir, expectations } from '../test/support/corpus.ts';
import { plainSharpVariants } from './optimizer.ts';
import { sha256Hex, uniqueJpeg } from './support/files.ts';
import {
  censusGrowth,
  connectInspector,
  type HeapCensus,
  INSPECT_OPTION,
  type Inspector,
  type MemoryReading,
} from './support/inspector.ts';
import { monotonicUs, type ProfileWindow, summarizeProfiles } from './support/profile.ts';
import {
  closePart,
  countOption,
  type Log,
  loadAverage,
  type PartResult,
  progress,
  type ResultLine,
  reproduceCommand,
  summaryTable,
} from './support/report.ts';
import {
  type CpuShares,
  countEntries,
  cpuMsOf,
  cpuProfileDir,
  cpuShares,
  diffCpu,
  dirUsage,
  machineCpu,
  processCpuMs,
  resultsSubdir,
  rssKinds,
  sampleRss,
  startBenchStack,
  threadCpuMs,
  treeRssMiB,
} from './support/stack.ts';
import { distribution, fixed, mib, pool, sleep } from './support/stats.ts';

const BATCH_SIZE = 500;
/** "Small" photos: at most this many bytes and pixels. */
const SMALL = { bytes: 300_000, pixels: 1_000_000 };
/** "Large" photos: at least this many pixels. */
const LARGE_PIXELS = 2_000_000;
const PHOTO_SETS = ['corpus', 'large', 'small'] as const;
type PhotoSet = (typeof PHOTO_SETS)[number];
const POLL_INTERVAL_MS = 500;
/** How often progress is printed during a round. */
const PROGRESS_EVERY_MS = 10_000;
/** At least this long, and 2 s an image, before a round is given up. */
const ROUND_TIMEOUT_MS = 15 * 60_000;
const TARGET_FLOOR_RATIO = 0.85;

interface Source {
  name: string;
  bytes: Buffer;
  width: number;
  height: number;
}

/** The corpus' valid JPEG photos that are expected to end `ready`, all or those of one size. */
async function corpusPhotos(set: PhotoSet): Promise<Source[]> {
  const expected = expectations();
  const dir = path.join(corpusDir, 'valid');
  const sources: Source[] = [];
  for (const name of (await readdir(dir)).sort()) {
    if (!/\.jpe?g$/i.test(name) || expected[`valid/${name}`]?.expect !== 'ready') continue;
    const bytes = await readFile(path.join(dir, name));
    const { width = 0, height = 0 } = await sharp(bytes).metadata();
    const pixels = width * height;
    const small = bytes.length <= SMALL.bytes && pixels <= SMALL.pixels;
    if (set === 'corpus' || (set === 'small' && small) || (set === 'large' && pixels >= LARGE_PIXELS))
      sources.push({ name, bytes, width, height });
  }
  if (sources.length === 0) throw new Error(`no ${set} JPEG photos in ${dir}`);
  return sources;
}

/**
 * The files of a burst: the sources in turn, each made unique with a JPEG comment (a new sha256, so
 * no upload is a duplicate of another). The bytes are made again when needed, not kept: a burst of
 * camera photos would otherwise hold gigabytes in this process.
 */
interface BurstFile {
  source: Source;
  tag: string;
  name: string;
  size: number;
  sha256: string;
}

function burstFiles(sources: readonly Source[], count: number, runTag: string): BurstFile[] {
  return Array.from({ length: count }, (_, i) => {
    const source = sources[i % sources.length] as Source;
    const tag = `photo-intake bench ${runTag} #${i}`;
    const bytes = uniqueJpeg(source.bytes, tag);
    return { source, tag, name: `${i}-${source.name}`, size: bytes.length, sha256: sha256Hex(bytes) };
  });
}

const bytesOf = (file: BurstFile) => uniqueJpeg(file.source.bytes, file.tag);

interface FloorOutcome {
  images: number;
  concurrency: number;
  wallMs: number;
  /** CPU of this process (all threads) during the floor. */
  cpuMs: number;
  throughput: number;
  machine: CpuShares;
  loadAverage: { start: number[]; end: number[] };
}

/**
 * Plain sharp on the burst's files, `concurrency` photos at a time, with the optimizer's libvips
 * settings (functions/optimizer/image/configure.ts: one thread per pipeline, no operation cache);
 * sharp's settings in this process are put back afterwards.
 */
async function sharpFloor(log: Log, files: readonly BurstFile[], concurrency: number): Promise<FloorOutcome> {
  const threads = sharp.concurrency();
  sharp.concurrency(1);
  sharp.cache(false);
  try {
    // Warm-up: the first calls load the codecs.
    for (const source of new Set(files.slice(0, 8).map((f) => f.source)))
      await plainSharpVariants(source.bytes);
    const tick = progress(log, 'floor (plain sharp)', files.length, PROGRESS_EVERY_MS);
    const loadAtStart = loadAverage();
    const machineBefore = await machineCpu();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    let done = 0;
    await pool(files, concurrency, async (file) => {
      await plainSharpVariants(bytesOf(file));
      tick(++done);
    });
    const wallMs = performance.now() - started;
    const cpuMs = cpuMsOf(process.cpuUsage(cpuBefore));
    return {
      images: files.length,
      concurrency,
      wallMs,
      cpuMs,
      throughput: files.length / (wallMs / 1000),
      machine: cpuShares(machineBefore, await machineCpu(), { stackMs: 0, benchMs: cpuMs }),
      loadAverage: { start: loadAtStart, end: loadAverage() },
    };
  } finally {
    sharp.concurrency(threads);
    sharp.cache(true);
  }
}

const memoryText = (m: MemoryReading) =>
  `RSS ${fixed(m.rssMiB)} MiB, JS heap used ${fixed(m.heapUsedMiB)} of ${fixed(m.heapTotalMiB)} MiB, ` +
  `external ${fixed(m.externalMiB)} MiB (array buffers ${fixed(m.arrayBuffersMiB)} MiB)`;

interface Upload {
  batchId: string;
  item: UploadItem;
  file: BurstFile;
  putDoneAt?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: batch views are checked field by field.
type BatchBody = any;

async function readWholeBatch(client: ReturnType<typeof apiClient>, batchId: string): Promise<BatchBody> {
  const response = await client.request('GET', `/v1/batches/${batchId}?limit=500`);
  if (response.status !== 200) throw new Error(`GET batch: ${response.status}`);
  return response.body;
}

interface RoundOutcome {
  images: number;
  postMs: number[];
  putPhaseMs: number;
  putMs: ReturnType<typeof distribution>;
  throughput: number;
  firstPutToLastReadyMs: number;
  latency: ReturnType<typeof distribution>;
  statuses: Record<string, number>;
  failures: unknown[];
  variantsChecked: number;
  variantProblems: string[];
  stackCpuMs: number;
  stackCpuByThreadMs: Record<string, number>;
  /** Shares of all CPUs' time during the burst: busy (anything), waiting on I/O, used by the stack, by this bench. */
  machine: CpuShares;
  memoryAfterGc: MemoryReading;
  rssAfterGc: Awaited<ReturnType<typeof rssKinds>>;
  peakRssMiB: number;
  idleRssMiB: number;
  dataDir: { bytes: number; files: number; stagingFiles: number };
  tmpEntries: number;
  window: ProfileWindow;
  /** GET of each finished 500-item batch (limit=500): first read, then again. */
  firstReadMs: number[];
  againReadMs: number[];
}

async function runRound(
  log: Log,
  inspector: Inspector,
  context: {
    url: string;
    pid: number;
    dataDir: string;
    tmpDir: string;
    rss: ReturnType<typeof sampleRss>;
    sources: Source[];
    images: number;
    concurrency: number;
    round: number;
  },
): Promise<RoundOutcome> {
  const { url, images, concurrency, sources, round } = context;
  const client = apiClient(url, 'bench-load');
  const files = burstFiles(sources, images, `${Date.now()}-${round}`);
  if (new Set(files.map((f) => f.sha256)).size !== images) throw new Error('the files are not unique');
  const declared = files.map(({ name, size, sha256 }) => ({ name, type: 'image/jpeg', size, sha256 }));
  const timeoutMs = Math.max(ROUND_TIMEOUT_MS, images * 2000);

  context.rss.resetPeak();
  const cpuBefore = await processCpuMs(context.pid);
  const threadsBefore = await threadCpuMs(context.pid);
  const machineBefore = await machineCpu();
  const clientBefore = process.cpuUsage();
  const startUs = monotonicUs();
  const postMs: number[] = [];
  const batches: CreatedBatch[] = [];
  for (let start = 0; start < images; start += BATCH_SIZE) {
    const started = performance.now();
    batches.push(await client.createBatch(declared.slice(start, start + BATCH_SIZE)));
    postMs.push(performance.now() - started);
  }
  const uploads: Upload[] = batches.flatMap((batch, b) =>
    batch.items.map((item) => {
      if (item.status !== 'pending') throw new Error(`item ${item.index}: ${item.status}, expected pending`);
      return {
        batchId: batch.batchId,
        item,
        file: files[b * BATCH_SIZE + item.index] as BurstFile,
      };
    }),
  );
  log(
    `  round ${round}: ${batches.length} batches created (POST ${postMs.map((ms) => fixed(ms)).join(', ')} ms); PUT ${images} files, ${concurrency} at a time`,
  );

  // Poll every batch while the PUTs run: a one-item page with the last ETag is enough to learn the
  // counts and `complete`; the items' timestamps are read once at the end.
  const state = new Map<string, { etag?: string; complete: boolean; ready: number; failed: number }>(
    batches.map((batch) => [batch.batchId, { complete: false, ready: 0, failed: 0 }]),
  );
  let polling = true;
  const pollTick = progress(log, `round ${round}: final`, images, PROGRESS_EVERY_MS);
  const poller = (async () => {
    const deadline = Date.now() + timeoutMs;
    while (polling) {
      for (const [batchId, s] of state) {
        if (s.complete) continue;
        const response = await client.request('GET', `/v1/batches/${batchId}?limit=1`, {
          headers: s.etag ? { 'if-none-match': s.etag } : {},
        });
        if (response.status === 304) continue;
        if (response.status !== 200) throw new Error(`poll: ${response.status}`);
        s.etag = response.headers.get('etag') ?? undefined;
        s.complete = response.body.complete;
        s.ready = response.body.counts.ready;
        s.failed = response.body.counts.failed;
      }
      const all = [...state.values()];
      const done = all.reduce((sum, s) => sum + s.ready + s.failed, 0);
      pollTick(
        done,
        `(ready ${all.reduce((sum, s) => sum + s.ready, 0)}, RSS ${fixed(context.rss.last())} MiB)`,
      );
      if (all.every((s) => s.complete)) return;
      if (Date.now() > deadline) throw new Error(`round ${round}: not complete after ${timeoutMs} ms`);
      await sleep(POLL_INTERVAL_MS);
    }
  })();

  const firstPutAt = Date.now();
  const putStarted = performance.now();
  const putTick = progress(log, `round ${round}: PUT`, images, PROGRESS_EVERY_MS);
  let puts = 0;
  const putDurations = await pool(uploads, concurrency, async (upload) => {
    const started = performance.now();
    const response = await putUpload(upload.item, bytesOf(upload.file));
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`PUT ${upload.item.imageId}: ${response.status}`);
    upload.putDoneAt = Date.now();
    putTick(++puts);
    return performance.now() - started;
  }).catch((error: unknown) => {
    polling = false;
    throw error;
  });
  const putPhaseMs = performance.now() - putStarted;
  log(
    `  round ${round}: all PUTs done in ${fixed(putPhaseMs)} ms (${fixed(images / (putPhaseMs / 1000), 1)} PUT/s)`,
  );
  await poller;
  const cpuAfter = await processCpuMs(context.pid);
  const stackCpuByThreadMs = diffCpu(await threadCpuMs(context.pid), threadsBefore);
  // Threads that ended during the round (libvips starts and stops workers) are only in the total.
  const exited = cpuAfter - cpuBefore - Object.values(stackCpuByThreadMs).reduce((sum, ms) => sum + ms, 0);
  if (exited > 0) stackCpuByThreadMs['(threads that exited)'] = exited;
  const machine = cpuShares(machineBefore, await machineCpu(), {
    stackMs: cpuAfter - cpuBefore,
    benchMs: cpuMsOf(process.cpuUsage(clientBefore)),
  });

  const window = { name: `round ${round}: POSTs, PUTs and processing`, startUs, endUs: monotonicUs() };

  // Final records: every image's status and the server's `updatedAt` when it became final.
  const putDone = new Map(uploads.map((u) => [u.item.imageId, u.putDoneAt as number]));
  const statuses: Record<string, number> = {};
  const failures: unknown[] = [];
  const latencies: number[] = [];
  const variants: Array<{ url: string; size: number; where: string }> = [];
  let lastFinal = 0;
  const firstReadMs: number[] = [];
  const againReadMs: number[] = [];
  for (const batch of batches) {
    // The first read of a finished batch signs every variant URL; a second one finds them cached.
    let started = performance.now();
    const body = await readWholeBatch(client, batch.batchId);
    firstReadMs.push(performance.now() - started);
    started = performance.now();
    await readWholeBatch(client, batch.batchId);
    againReadMs.push(performance.now() - started);
    for (const item of body.items) {
      statuses[item.status] = (statuses[item.status] ?? 0) + 1;
      if (item.status !== 'ready') {
        failures.push({ imageId: item.imageId, name: item.name, status: item.status, error: item.error });
        continue;
      }
      const finalAt = Date.parse(item.updatedAt);
      lastFinal = Math.max(lastFinal, finalAt);
      latencies.push(finalAt - (putDone.get(item.imageId) ?? Number.NaN));
      for (const v of item.variants ?? [])
        variants.push({ url: v.url, size: v.size, where: `${item.imageId}/${v.name}` });
    }
  }

  // Every variant exists, with the size its record gives (plain GET of the presigned URL).
  const variantProblems: string[] = [];
  const checkTick = progress(log, `round ${round}: variants checked`, variants.length);
  let checked = 0;
  await pool(variants, concurrency, async (variant) => {
    const response = await fetch(variant.url);
    const body = Buffer.from(await response.arrayBuffer());
    if (response.status !== 200) variantProblems.push(`${variant.where}: ${response.status}`);
    else if (body.length !== variant.size)
      variantProblems.push(`${variant.where}: ${body.length} bytes, record says ${variant.size}`);
    checkTick(++checked);
  });

  const peakRssMiB = context.rss.peak();
  // Idle state after the burst: RSS once work has stopped, what the burst left on disk.
  await sleep(3000);
  const idleRssMiB = await treeRssMiB(context.pid);
  const memoryAfterGc = await inspector.memoryAfterGc();
  const rssAfterGc = await rssKinds(context.pid);
  const usage = await dirUsage(context.dataDir);
  const stagingFiles = await countStaging(context.dataDir);
  const firstPutToLastReadyMs = lastFinal - firstPutAt;
  return {
    images,
    postMs,
    putPhaseMs,
    putMs: distribution(putDurations),
    throughput: (statuses.ready ?? 0) / (firstPutToLastReadyMs / 1000),
    firstPutToLastReadyMs,
    latency: distribution(latencies),
    statuses,
    failures: failures.slice(0, 20),
    variantsChecked: variants.length,
    variantProblems: variantProblems.slice(0, 20),
    stackCpuMs: cpuAfter - cpuBefore,
    stackCpuByThreadMs,
    machine,
    memoryAfterGc,
    rssAfterGc,
    peakRssMiB,
    idleRssMiB,
    dataDir: { ...usage, stagingFiles },
    tmpEntries: await countEntries(context.tmpDir),
    window,
    firstReadMs,
    againReadMs,
  };
}

/** Staging files the S3 emulator left behind (it writes `.staging-*` files and renames them). */
async function countStaging(dir: string): Promise<number> {
  let count = 0;
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await walk(path.join(current, entry.name));
      else if (entry.name.startsWith('.staging-')) count++;
    }
  };
  await walk(dir);
  return count;
}

/** `--stack-env NAME=VALUE` (repeatable): extra environment for the stack, e.g. MALLOC_ARENA_MAX=2. */
function stackEnv(args: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  args.forEach((arg, i) => {
    const pair = arg === '--stack-env' ? args[i + 1] : undefined;
    const at = pair?.indexOf('=') ?? -1;
    if (pair && at > 0) env[pair.slice(0, at)] = pair.slice(at + 1);
  });
  return env;
}

export default async function runLoadBench(log: Log, args: readonly string[] = []): Promise<PartResult> {
  const images = countOption(args, '--images', 1000);
  const rounds = countOption(args, '--rounds', 2);
  const concurrency = countOption(args, '--concurrency', 32);
  /** The stack's OPTIMIZER_CONCURRENCY; its own default (the core count) when not given. */
  const optimizerConcurrency = countOption(args, '--optimizer-concurrency', 0);
  const workers = optimizerConcurrency || availableParallelism();
  const floorImages = Math.min(images, countOption(args, '--floor-images', images));
  const photosArg = args[args.indexOf('--photos') + 1];
  const photos: PhotoSet = args.includes('--photos') ? (photosArg as PhotoSet) : 'corpus';
  if (!PHOTO_SETS.includes(photos)) throw new Error(`--photos: one of ${PHOTO_SETS.join(', ')}`);
  const env = stackEnv(args);
  const command = reproduceCommand('load', {
    '--images': images,
    '--rounds': rounds,
    '--photos': photos,
    '--concurrency': concurrency,
    '--optimizer-concurrency': optimizerConcurrency || undefined,
    '--floor-images': floorImages === images ? undefined : floorImages,
    '--cpu-prof': args.includes('--cpu-prof'),
    '--heap-diff': args.includes('--heap-diff'),
    ...Object.fromEntries(Object.entries(env).map(([name, value]) => [`--stack-env ${name}=${value}`, true])),
  });
  const loadAtStart = loadAverage();
  log(`reproduce: ${command}`);
  log(`load average at start: ${loadAtStart.join(' ')}`);
  const sources = await corpusPhotos(photos);
  const megapixels = (s: Source) => (s.width * s.height) / 1e6;
  const meanMegapixels =
    Array.from({ length: images }, (_, i) => megapixels(sources[i % sources.length] as Source)).reduce(
      (a, b) => a + b,
      0,
    ) / images;
  log(
    `run: ${rounds} round(s) of ${images} uploads (${Math.ceil(images / BATCH_SIZE)} batch(es), ${concurrency} PUTs at a time) ` +
      `of ${photos} photos, ${workers} optimizer invocations at once; floor on ${floorImages} of the same files, ` +
      `${workers} at a time`,
  );
  log(
    `sources: ${sources.length} ${photos} JPEG photos from ${corpusDir}/valid, used in turn (mean ${fixed(meanMegapixels, 1)} MP an upload): ` +
      sources
        .map(
          (s) =>
            `${s.name.replace(/^[^-]+--/, '')} ${s.width}x${s.height} ${fixed(s.bytes.length / 1000)} kB`,
        )
        .join(', '),
  );
  const profileDir = cpuProfileDir(args, 'load');
  log(`starting the local stack${profileDir ? ` (node --cpu-prof, profiles in ${profileDir})` : ''}...`);
  const bench = await startBenchStack({
    nodeOptions: [INSPECT_OPTION],
    env: {
      ...(optimizerConcurrency > 0 ? { OPTIMIZER_CONCURRENCY: String(optimizerConcurrency) } : {}),
      ...env,
    },
    ...(profileDir ? { cpuProfileDir: profileDir } : {}),
  });
  const pid = bench.stack.child.pid as number;
  const inspector = await connectInspector(() => bench.stack.logs());
  log(`  ${bench.stack.url} (pid ${pid}, DATA_DIR ${bench.dataDir}, TMPDIR ${bench.tmpDir})`);
  const rss = sampleRss(pid, 200);
  const outcomes: RoundOutcome[] = [];
  const details: Record<string, unknown> = {
    command,
    loadAverage: { start: loadAtStart },
    images,
    rounds,
    photos,
    sources: sources.map((s) => ({ name: s.name, width: s.width, height: s.height, bytes: s.bytes.length })),
    concurrency,
    batchSize: BATCH_SIZE,
    optimizerConcurrency: optimizerConcurrency || `default (${availableParallelism()})`,
    stackEnv: env,
  };
  let floor: FloorOutcome | undefined;
  try {
    await sleep(1000);
    details.startRssMiB = await treeRssMiB(pid);
    details.startTmpEntries = await countEntries(bench.tmpDir);
    details.startDataDir = await dirUsage(bench.dataDir);
    details.startMemoryAfterGc = await inspector.memoryAfterGc();
    details.startRssAfterGc = await rssKinds(pid);
    const kinds = details.startRssAfterGc as Awaited<ReturnType<typeof rssKinds>>;
    log(
      `  after a full GC: ${memoryText(details.startMemoryAfterGc as MemoryReading)}; ` +
        `RSS anonymous ${fixed(kinds.anonMiB)} MiB, file-backed ${fixed(kinds.fileMiB)} MiB`,
    );
    log(
      `  idle RSS ${fixed(details.startRssMiB as number)} MiB, ${details.startTmpEntries} entries in its TMPDIR`,
    );
    // The floor, on the same kind of files (same sources in the same order, made unique the same way).
    log(`floor: plain sharp on ${floorImages} files, ${workers} at a time (the stack idles meanwhile)...`);
    floor = await sharpFloor(log, burstFiles(sources, floorImages, `floor-${Date.now()}`), workers);
    details.floor = floor;
    log(
      `  floor: ${fixed(floor.throughput, 2)} images/s (${floor.images} in ${fixed(floor.wallMs / 1000, 1)} s, ` +
        `${fixed(floor.cpuMs / floor.images)} ms CPU an image; CPUs ${fixed(floor.machine.busyPercent)}% busy, ` +
        `this process ${fixed(floor.machine.benchPercent)}%, others ${fixed(floor.machine.othersPercent)}%; ` +
        `load average ${floor.loadAverage.start.join(' ')} -> ${floor.loadAverage.end.join(' ')})`,
    );
    log(
      `  at the floor's rate a round of ${images} takes at least ${fixed(images / floor.throughput)} s; ` +
        `at ${TARGET_FLOOR_RATIO}x, ${fixed(images / floor.throughput / TARGET_FLOOR_RATIO)} s`,
    );
    const heapDir = args.includes('--heap-diff') ? resultsSubdir('heap-load') : undefined;
    if (heapDir) await mkdir(heapDir, { recursive: true });
    let firstCensus: HeapCensus | undefined;
    for (let round = 1; round <= rounds; round++) {
      const outcome = await runRound(log, inspector, {
        url: bench.stack.url,
        pid,
        dataDir: bench.dataDir,
        tmpDir: bench.tmpDir,
        rss,
        sources,
        images,
        concurrency,
        round,
      });
      outcomes.push(outcome);
      log(
        `  round ${round}: ${JSON.stringify(outcome.statuses)}, ${fixed(outcome.throughput, 2)} images/s ` +
          `(${fixed(outcome.throughput / floor.throughput, 2)}x the floor's ${fixed(floor.throughput, 2)}), ` +
          `latency p50 ${fixed(outcome.latency.p50)} / p95 ${fixed(outcome.latency.p95)} / p99 ${fixed(outcome.latency.p99)} ms, ` +
          `peak RSS ${fixed(outcome.peakRssMiB)} MiB, idle RSS after ${fixed(outcome.idleRssMiB)} MiB, ` +
          `stack CPU ${fixed(outcome.stackCpuMs / outcome.images, 1)} ms/image, ` +
          `DATA_DIR ${fixed(mib(outcome.dataDir.bytes), 1)} MiB in ${outcome.dataDir.files} files ` +
          `(${outcome.dataDir.stagingFiles} staging), TMPDIR entries ${outcome.tmpEntries}, ` +
          `${outcome.variantsChecked} variants checked, ${outcome.variantProblems.length} problems`,
      );
      log(
        `  round ${round}: stack CPU per image by thread: ${Object.entries(outcome.stackCpuByThreadMs)
          .map(([name, ms]) => `${name} ${fixed(ms / outcome.images, 1)} ms`)
          .join(', ')}`,
      );
      log(
        `  round ${round}: during the burst the ${availableParallelism()} CPUs were ${fixed(outcome.machine.busyPercent)}% busy ` +
          `(the stack ${fixed(outcome.machine.stackPercent)}%, this bench ${fixed(outcome.machine.benchPercent)}%, ` +
          `other processes ${fixed(outcome.machine.othersPercent)}%), ` +
          `${fixed(outcome.machine.iowaitPercent)}% waiting on I/O, ${fixed(outcome.machine.stealPercent)}% stolen`,
      );
      log(
        `  round ${round}: after a full GC: ${memoryText(outcome.memoryAfterGc)}; ` +
          `RSS anonymous ${fixed(outcome.rssAfterGc.anonMiB)} MiB, file-backed ${fixed(outcome.rssAfterGc.fileMiB)} MiB`,
      );
      if (heapDir) {
        const census = await inspector.heapCensus(path.join(heapDir, `after-round-${round}.heapsnapshot`));
        if (!firstCensus) firstCensus = census;
        else {
          const growth = censusGrowth(firstCensus, census);
          details[`heapGrowthRound1To${round}`] = growth;
          log(`  round ${round}: live JS objects grown since round 1 (heap snapshot census):`);
          for (const g of growth)
            log(
              `    ${fixed(g.bytes / 1024).padStart(8)} KiB ${String(g.count).padStart(8)} objects  ${g.key} (now ${g.totalCount})`,
            );
        }
      }
      for (const failure of outcome.failures) log(`    not ready: ${JSON.stringify(failure)}`);
      for (const problem of outcome.variantProblems) log(`    variant: ${problem}`);
    }
  } finally {
    inspector.close();
    const { peakMiB, samples } = await rss.stop();
    details.peakRssMiB = peakMiB;
    details.rssSamples = samples;
    const stderr = bench.stack
      .logs()
      .split('\n')
      .filter(
        (line) =>
          line && !/^(Debugger listening on|For help, see|Debugger attached|Debugger ending on)/.test(line),
      )
      .join('\n');
    details.stackStderrLines = stderr ? stderr.split('\n').length : 0;
    if (stderr)
      log(
        `  the stack wrote ${details.stackStderrLines} stderr line(s); last: ${stderr.split('\n').slice(-3).join(' | ')}`,
      );
    details.stackExitCode = await bench.close();
    if (details.stackExitCode !== 0)
      log(`warning: the stack exited with ${details.stackExitCode} on SIGTERM`);
  }
  details.rounds = outcomes;
  if (profileDir) {
    log('');
    log(`CPU profile of the stack process (${profileDir}):`);
    const summary = await summarizeProfiles(
      profileDir,
      outcomes.map((o) => o.window),
    );
    for (const line of summary.lines) log(line);
    details.profile = summary.data;
  }

  const lines: ResultLine[] = [];
  if (floor) {
    lines.push({
      name: `floor: plain sharp, ${floor.images} of the same files, ${floor.concurrency} at a time`,
      unit: 'img/s',
      value: floor.throughput,
    });
  }
  for (const [i, o] of outcomes.entries()) {
    const r = `round ${i + 1}`;
    const allReady = (o.statuses.ready ?? 0) === o.images && o.variantProblems.length === 0;
    lines.push(
      {
        name: `${r}: ${o.images} final records, all ready, variants present`,
        unit: 'ready',
        value: o.statuses.ready ?? 0,
        target: `= ${o.images}`,
        pass: allReady,
      },
      { name: `${r}: throughput, first PUT to last ready`, unit: 'img/s', value: o.throughput },
      ...(floor
        ? [
            {
              name: `${r}: throughput / floor`,
              unit: 'x',
              value: Number((o.throughput / floor.throughput).toFixed(2)),
              target: `>= ${TARGET_FLOOR_RATIO}`,
              pass: o.throughput / floor.throughput >= TARGET_FLOOR_RATIO,
            },
          ]
        : []),
      { name: `${r}: latency, PUT done to ready`, unit: 'ms', dist: o.latency },
      { name: `${r}: latency, PUT done to ready, p99`, unit: 'ms', value: o.latency.p99 },
      { name: `${r}: PUT (client, ${concurrency} at a time)`, unit: 'ms', dist: o.putMs },
      {
        name: `${r}: GET finished batch, limit=500, first read`,
        unit: 'ms',
        dist: distribution(o.firstReadMs),
      },
      {
        name: `${r}: GET finished batch, limit=500, read again`,
        unit: 'ms',
        dist: distribution(o.againReadMs),
      },
      { name: `${r}: peak RSS, stack + children`, unit: 'MiB', value: o.peakRssMiB },
      { name: `${r}: idle RSS after the burst`, unit: 'MiB', value: o.idleRssMiB },
      { name: `${r}: RSS after the burst and a full GC`, unit: 'MiB', value: o.memoryAfterGc.rssMiB },
      { name: `${r}: JS heap used after a full GC`, unit: 'MiB', value: o.memoryAfterGc.heapUsedMiB },
      { name: `${r}: stack CPU per image`, unit: 'ms', value: o.stackCpuMs / o.images },
      { name: `${r}: share of all CPUs used by the stack`, unit: '%', value: o.machine.stackPercent },
      {
        name: `${r}: share used by other processes`,
        unit: '%',
        value: o.machine.othersPercent,
      },
      { name: `${r}: DATA_DIR size`, unit: 'MiB', value: mib(o.dataDir.bytes) },
    );
  }
  const last = outcomes.at(-1);
  if (last) {
    const leftover = last.tmpEntries - (details.startTmpEntries as number);
    lines.push({
      name: 'temp files left in the stack TMPDIR',
      unit: 'files',
      value: leftover,
      target: '= 0',
      pass: leftover === 0 && last.dataDir.stagingFiles === 0,
    });
  }
  lines.push({
    name: 'peak RSS over the run, stack + children',
    unit: 'MiB',
    value: details.peakRssMiB as number,
  });
  closePart(log, details, loadAtStart, command);
  return { lines, details };
}

const runDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (runDirectly) {
  const result = await runLoadBench((line) => console.log(line), process.argv.slice(2));
  for (const line of summaryTable(result.lines.map((line) => ({ part: 'load', line })))) console.log(line);
}
