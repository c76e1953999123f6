/**
 * Pipeline benchmark: from the last upload to `complete` on the local stack, against plain sharp
 * making the same variants of the same photos with the same parallelism (the floor). Issue target:
 * the stack within 1.5x of the floor.
 *
 *   npm run bench -- pipeline [--rounds 3]
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { apiClient, type LocalFile, loadFile, putUpload } from '../test/support/api-client.ts';
import { corpusDir } from '../test/support/corpus.ts';
import { plainSharpVariants } from './optimizer.ts';
import { type Log, type PartResult, progress } from './support/report.ts';
import { startBenchStack } from './support/stack.ts';
import { distribution } from './support/stats.ts';

/** The local stack's optimizer invocations at once; the floor runs as many photos at once. */
const CONCURRENCY = 2;

function option(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const value = i >= 0 ? Number(args[i + 1]) : Number.NaN;
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

async function photos(): Promise<LocalFile[]> {
  const dir = path.join(corpusDir, 'valid');
  const names = (await readdir(dir)).filter((name) => /\.jpe?g$/i.test(name)).sort();
  return Promise.all(names.map((name) => loadFile(path.join(dir, name))));
}

/** Every photo's variants with plain sharp, `CONCURRENCY` photos at a time; wall ms. */
async function floor(files: readonly LocalFile[]): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < files.length) {
        const file = files[next++] as LocalFile;
        await plainSharpVariants(file.bytes);
      }
    }),
  );
  return performance.now() - started;
}

export default async function runPipelineBench(log: Log, args: readonly string[] = []): Promise<PartResult> {
  const rounds = option(args, '--rounds', 3);
  const files = await photos();
  const megapixels = files.length;
  log(`pipeline: ${files.length} corpus JPEGs, ${rounds} rounds, ${CONCURRENCY} at a time`);

  await floor(files); // warm-up: sharp's first calls load codecs
  const floors: number[] = [];
  for (let r = 0; r < rounds; r++) floors.push(await floor(files));
  log(`  plain sharp: ${floors.map((ms) => ms.toFixed(0)).join(', ')} ms`);

  const bench = await startBenchStack({ env: { OPTIMIZER_CONCURRENCY: String(CONCURRENCY) } });
  const stackTimes: number[] = [];
  try {
    const report = progress(log, 'stack rounds', rounds + 1, 0);
    // Round 0 warms the stack up (module loading, first sharp calls) and is not counted.
    for (let r = 0; r <= rounds; r++) {
      const api = apiClient(bench.stack.url, `pipeline-${r}`);
      const batch = await api.createBatch(files.map(({ sha256: _, ...file }) => file));
      await Promise.all(batch.items.map((item, i) => putUpload(item, (files[i] as LocalFile).bytes)));
      const lastUpload = performance.now();
      let etag = '';
      for (;;) {
        const page = await api.request('GET', `/v1/batches/${batch.batchId}?limit=1`, {
          headers: etag ? { 'if-none-match': etag } : {},
        });
        if (page.status === 200) {
          etag = page.headers.get('etag') ?? '';
          if (page.body.complete) {
            if (page.body.counts.ready !== files.length)
              throw new Error(`not all ready: ${JSON.stringify(page.body.counts)}`);
            break;
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      if (r > 0) stackTimes.push(performance.now() - lastUpload);
      report(r + 1);
    }
  } finally {
    await bench.close();
  }
  log(`  local stack, last upload to complete: ${stackTimes.map((ms) => ms.toFixed(0)).join(', ')} ms`);

  const floorDist = distribution(floors);
  const stackDist = distribution(stackTimes);
  const ratio = stackDist.p50 / floorDist.p50;
  return {
    lines: [
      { name: 'plain sharp, all photos', unit: 'ms', dist: floorDist },
      { name: 'local stack, last upload to complete', unit: 'ms', dist: stackDist },
      {
        name: 'stack / plain sharp (p50)',
        unit: 'x',
        value: Number(ratio.toFixed(2)),
        target: '<= 1.5',
        pass: ratio <= 1.5,
      },
    ],
    details: { photos: files.map((f) => f.name), megapixels, concurrency: CONCURRENCY, floors, stackTimes },
  };
}
