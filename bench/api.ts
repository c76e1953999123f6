/**
 * API benchmark against the local stack (`node local/main.ts` as a child process, fresh DATA_DIR):
 * p50/p95/max of a 500-file POST /v1/uploads, of reading a 500-item batch (every page, and as one
 * page), and of a 304 poll.
 *
 * The POST is compared with its floor, measured in the same run, one floor sample after each POST:
 * the same 501 rows written with BatchWriteItem to the DynamoDB server the stack uses, plus 500
 * upload URLs signed with the service's own signer (bench/support/post-floor.ts).
 *
 *   node bench/api.ts [--iterations 30] [--cpu-prof]
 *
 * `--cpu-prof` runs the stack with `node --cpu-prof` and prints where its CPU time went.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiClient, type CreatedBatch, putUpload } from '../test/support/api-client.ts';
import { corpusFile } from '../test/support/corpus.ts';
import { apiBreakdown } from './support/breakdown.ts';
import { type DeclaredFile, realisticFiles, sha256Hex, uniqueJpeg } from './support/files.ts';
import { type FloorSample, postFloor } from './support/post-floor.ts';
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
  cpuMsOf,
  cpuProfileDir,
  cpuShares,
  machineCpu,
  processCpuMs,
  startBenchStack,
} from './support/stack.ts';
import { distribution, fixed, now } from './support/stats.ts';

const FILES_PER_BATCH = 500;
/** Open uploads are counted per owner; a new owner every this many POSTs keeps the count before
 * each POST between 0 and 4,500, inside the default MAX_OPEN_UPLOADS (5,000) a real owner lives in. */
const POSTS_PER_OWNER = 10;
const TARGETS = {
  /** POST p50, ms, and as a multiple of the floor's p50. */
  postP50: 150,
  postFloorRatio: 1.5,
  /** A 500-item batch read through all five pages of 100. */
  allPagesP50: 100,
  /** A 500-item batch read as one page. */
  onePageP50: 150,
  notModifiedP50: 10,
} as const;

type Client = ReturnType<typeof apiClient>;

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const started = now();
  const result = await run();
  return { ms: now() - started, result };
}

async function postBatch(client: Client, files: readonly DeclaredFile[]): Promise<CreatedBatch> {
  const batch = await client.createBatch([...files]);
  if (batch.items.length !== files.length) throw new Error(`POST returned ${batch.items.length} items`);
  const notPending = batch.items.filter((item) => item.status !== 'pending');
  if (notPending.length > 0) throw new Error(`POST: ${notPending.length} items not pending`);
  return batch;
}

/** Reads every page of a batch, following `nextCursor`; returns the number of items and pages. */
async function readAllPages(client: Client, batchId: string, limit: number) {
  let cursor: string | undefined;
  let items = 0;
  let pages = 0;
  do {
    const query = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const response = await client.request('GET', `/v1/batches/${batchId}?${query}`);
    if (response.status !== 200) throw new Error(`GET batch: ${response.status}`);
    items += response.body.items.length;
    pages++;
    cursor = response.body.nextCursor;
  } while (cursor);
  return { items, pages };
}

/** A 500-item batch whose items are all `ready` with variants: one real photo, processed, then
 * declared 500 times (each becomes a ready duplicate carrying the same variants and URLs to sign). */
async function readyBatch(client: Client, log: Log): Promise<string> {
  const bytes = uniqueJpeg(
    await readFile(corpusFile('valid/sharp--Landscape_1.jpg')),
    `bench-api ${Date.now()}`,
  );
  const file = { name: 'Landscape_1.jpg', type: 'image/jpeg', size: bytes.length, sha256: sha256Hex(bytes) };
  const first = await client.createBatch([file]);
  const item = first.items[0];
  if (!item?.upload) throw new Error('the seed photo got no upload URL');
  const put = await putUpload(item, bytes);
  if (!put.ok) throw new Error(`PUT: ${put.status}`);
  const done = await client.waitForBatch(first.batchId, 60_000);
  if (done.items[0]?.status !== 'ready') throw new Error(`seed photo: ${JSON.stringify(done.items[0])}`);
  const batch = await client.createBatch(
    Array.from({ length: FILES_PER_BATCH }, (_, i) => ({ ...file, name: `copy-${i}.jpg` })),
  );
  const ready = batch.items.filter((i) => i.status === 'ready').length;
  if (ready !== FILES_PER_BATCH) throw new Error(`ready batch: ${ready} of ${FILES_PER_BATCH} ready`);
  log(`  ready batch ${batch.batchId}: 500 ready items with ${done.items[0].variants.length} variants each`);
  return batch.batchId;
}

export default async function runApiBench(log: Log, args: readonly string[] = []): Promise<PartResult> {
  const iterations = countOption(args, '--iterations', 30);
  const warmup = Math.max(3, Math.round(iterations / 10));
  const profileDir = cpuProfileDir(args, 'api');
  const command = reproduceCommand('api', { '--iterations': iterations, '--cpu-prof': Boolean(profileDir) });
  const loadAtStart = loadAverage();
  log(`reproduce: ${command}`);
  log(`load average at start: ${loadAtStart.join(' ')}`);
  log(`starting the local stack${profileDir ? ` (node --cpu-prof, profiles in ${profileDir})` : ''}...`);
  const bench = await startBenchStack(profileDir ? { cpuProfileDir: profileDir } : {});
  const { stack } = bench;
  log(`  ${stack.url} (DATA_DIR ${bench.dataDir}, DynamoDB ${stack.dynamodbEndpoint})`);
  if (!stack.dynamodbEndpoint) throw new Error('the stack printed no DynamoDB endpoint');
  const floor = postFloor({
    dynamodb: stack.dynamodbEndpoint,
    s3: stack.s3Endpoint,
    tableName: stack.tableName,
  });
  const lines: ResultLine[] = [];
  const details: Record<string, unknown> = {
    command,
    loadAverage: { start: loadAtStart },
    iterations,
    warmup,
    filesPerBatch: FILES_PER_BATCH,
  };
  /** Each measured loop's span, to split the stack's CPU profile by operation. */
  const windows: ProfileWindow[] = [];
  const measure = async (name: string, sample: (i: number) => Promise<number>) => {
    const samples: number[] = [];
    const tickLoop = progress(log, name, iterations);
    const pid = stack.child.pid as number;
    const [machineBefore, stackBefore, benchBefore] = [
      await machineCpu(),
      await processCpuMs(pid),
      process.cpuUsage(),
    ];
    const startUs = monotonicUs();
    for (let i = 0; i < iterations; i++) {
      const ms = await sample(i);
      samples.push(ms);
      tickLoop(i + 1, `last ${fixed(ms)} ms`);
    }
    windows.push({ name, startUs, endUs: monotonicUs() });
    const shares = cpuShares(machineBefore, await machineCpu(), {
      stackMs: (await processCpuMs(pid)) - stackBefore,
      benchMs: cpuMsOf(process.cpuUsage(benchBefore)),
    });
    cpu[name] = shares;
    log(
      `  ${name}: p50 ${fixed(distribution(samples).p50, 1)} ms; CPUs ${fixed(shares.busyPercent)}% busy ` +
        `(stack ${fixed(shares.stackPercent)}%, bench ${fixed(shares.benchPercent)}%, other processes ${fixed(shares.othersPercent)}%)`,
    );
    return samples;
  };
  /** Shares of the machine's CPU time during each measured loop (the machine is shared). */
  const cpu: Record<string, CpuShares> = {};
  details.cpuShares = cpu;
  let exitCode: number | null = null;
  try {
    const owner = (i: number) => `bench-api-${Math.floor(i / POSTS_PER_OWNER)}`;
    const warmClient = apiClient(stack.url, 'bench-api-warmup');

    log(`warm-up: ${warmup} POSTs of ${FILES_PER_BATCH} files and floors, reads of each kind`);
    for (let i = 0; i < warmup; i++) {
      await postBatch(warmClient, realisticFiles(FILES_PER_BATCH, 1000 + i));
      await floor.sample('bench-api-floor-warmup', realisticFiles(FILES_PER_BATCH, 2000 + i));
    }

    // POST /v1/uploads, 500 files, unique checksums; after each, one sample of its floor (same
    // kind of files, its own owner), so that both see the same machine.
    const created: string[] = [];
    const floors: FloorSample[] = [];
    const postName = `POST /v1/uploads, ${FILES_PER_BATCH} files (sha256 each)`;
    const postMs = await measure(postName, async (i) => {
      const files = realisticFiles(FILES_PER_BATCH, i + 1);
      const { ms, result } = await timed(() => postBatch(apiClient(stack.url, owner(i)), files));
      created.push(result.batchId);
      const sample = await floor.sample('bench-api-floor', realisticFiles(FILES_PER_BATCH, 3000 + i));
      if (sample.rows !== FILES_PER_BATCH + 1 || sample.urls !== FILES_PER_BATCH)
        throw new Error(`floor: ${sample.rows} rows and ${sample.urls} URLs`);
      floors.push(sample);
      return ms;
    });
    const post = distribution(postMs);
    const floorTotal = distribution(floors.map((f) => f.totalMs));
    const ratio = post.p50 / floorTotal.p50;
    log(
      `  floor p50 ${fixed(floorTotal.p50, 1)} ms (BatchWriteItem of ${FILES_PER_BATCH + 1} rows ` +
        `${fixed(distribution(floors.map((f) => f.writeMs)).p50, 1)} ms + ${FILES_PER_BATCH} URLs signed ` +
        `${fixed(distribution(floors.map((f) => f.signMs)).p50, 1)} ms); POST / floor ${fixed(ratio, 2)}x`,
    );
    lines.push(
      {
        name: postName,
        unit: 'ms',
        dist: post,
        target: `p50 <= ${TARGETS.postP50}`,
        pass: post.p50 <= TARGETS.postP50,
        note: `owner changes every ${POSTS_PER_OWNER} POSTs (0-4,500 open uploads before each)`,
      },
      {
        name: `  floor: BatchWriteItem of the same ${FILES_PER_BATCH + 1} rows + ${FILES_PER_BATCH} URLs signed`,
        unit: 'ms',
        dist: floorTotal,
      },
      {
        name: `    BatchWriteItem, ${FILES_PER_BATCH + 1} rows (25 a request, 8 at a time)`,
        unit: 'ms',
        dist: distribution(floors.map((f) => f.writeMs)),
      },
      {
        name: `    S3UrlSigner.presignPut x${FILES_PER_BATCH}`,
        unit: 'ms',
        dist: distribution(floors.map((f) => f.signMs)),
      },
      {
        name: '  POST / floor (p50)',
        unit: 'x',
        value: Number(ratio.toFixed(2)),
        target: `<= ${TARGETS.postFloorRatio}`,
        pass: ratio <= TARGETS.postFloorRatio,
      },
    );
    details.postSamplesMs = postMs.map((ms) => Math.round(ms * 10) / 10);
    details.floorSamplesMs = floors.map(({ writeMs, signMs }) => ({
      writeMs: Math.round(writeMs * 10) / 10,
      signMs: Math.round(signMs * 10) / 10,
    }));

    // Batch reads.
    const api = apiClient(stack.url, 'bench-api-reader');
    log('preparing a 500-item ready batch (one photo processed, declared 500 times)...');
    // Its items share one image's variant files, so after the first read their URLs come from the
    // signer's cache of this hour's URLs; a first read of distinct images is in the load part.

    const readyId = await readyBatch(api, log);
    const pendingClient = apiClient(stack.url, owner(0));
    const pendingId = created[0] as string;

    const reads: Array<{ name: string; client: Client; batchId: string; limit: number; target: boolean }> = [
      {
        name: 'GET batch, 500 ready, limit=100, all 5 pages',
        client: api,
        batchId: readyId,
        limit: 100,
        target: true,
      },
      {
        name: 'GET batch, 500 ready, limit=500, one page',
        client: api,
        batchId: readyId,
        limit: 500,
        target: true,
      },
      {
        name: 'GET batch, 500 pending, limit=100, all 5 pages',
        client: pendingClient,
        batchId: pendingId,
        limit: 100,
        target: true,
      },
      {
        name: 'GET batch, 500 pending, limit=500, one page',
        client: pendingClient,
        batchId: pendingId,
        limit: 500,
        target: true,
      },
    ];
    for (const read of reads) {
      for (let i = 0; i < warmup; i++) await readAllPages(read.client, read.batchId, read.limit);
      const samples = await measure(read.name, async () => {
        const { ms, result } = await timed(() => readAllPages(read.client, read.batchId, read.limit));
        if (result.items !== FILES_PER_BATCH) throw new Error(`${read.name}: ${result.items} items`);
        return ms;
      });
      const dist = distribution(samples);
      const target = read.limit === 500 ? TARGETS.onePageP50 : TARGETS.allPagesP50;
      lines.push({
        name: read.name,
        unit: 'ms',
        dist,
        ...(read.target ? { target: `p50 <= ${target}`, pass: dist.p50 <= target } : {}),
      });
    }

    // 304 poll: the first page (default limit) of the ready batch, with its current ETag.
    for (const [label, client, batchId] of [
      ['500 ready', api, readyId],
      ['500 pending', pendingClient, pendingId],
    ] as const) {
      const first = await client.request('GET', `/v1/batches/${batchId}`);
      const etag = first.headers.get('etag');
      if (!etag) throw new Error('no ETag on a batch read');
      const poll = () =>
        client.request('GET', `/v1/batches/${batchId}`, { headers: { 'if-none-match': etag } });
      for (let i = 0; i < warmup; i++) await poll();
      const name = `GET batch with If-None-Match -> 304 (${label})`;
      const samples = await measure(name, async () => {
        const { ms, result } = await timed(poll);
        if (result.status !== 304) throw new Error(`poll: ${result.status}, expected 304`);
        return ms;
      });
      const dist = distribution(samples);
      lines.push({
        name,
        unit: 'ms',
        dist,
        target: `p50 <= ${TARGETS.notModifiedP50}`,
        pass: dist.p50 <= TARGETS.notModifiedP50,
      });
    }
  } finally {
    floor.close();
    exitCode = await bench.close();
    details.stackExitCode = exitCode;
  }
  if (exitCode !== 0) log(`warning: the stack exited with ${exitCode} on SIGTERM`);
  const breakdownRuns = Math.min(iterations, 15);
  log('');
  log(`in-process breakdown (${breakdownRuns} runs each; handler code + dynalite in this process, no HTTP):`);
  const breakdown = await apiBreakdown(breakdownRuns);
  for (const row of breakdown) {
    log(
      `  ${row.operation.padEnd(58)} ${row.step.padEnd(32)} p50 ${fixed(row.p50, 1).padStart(6)} ms  p95 ${fixed(row.p95, 1).padStart(6)} ms`,
    );
  }
  details.breakdown = breakdown;
  if (profileDir) {
    log('');
    log(`CPU profile of the stack process (${profileDir}):`);
    const summary = await summarizeProfiles(profileDir, windows);
    for (const line of summary.lines) log(line);
    details.profile = summary.data;
  }
  closePart(log, details, loadAtStart, command);
  return { lines, details };
}

const runDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (runDirectly) {
  const result = await runApiBench((line) => console.log(line), process.argv.slice(2));
  for (const line of summaryTable(result.lines.map((line) => ({ part: 'api', line })))) console.log(line);
}
