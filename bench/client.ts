/**
 * Client benchmark: the client library uploading 500 corpus-sized photos to the local stack, against
 * a bare loop making the same requests (hash, one batch, PUTs with the same concurrency; no
 * retries, no progress, no state). Issue target: the library within 1.2x of the bare loop, time to
 * all PUTs done.
 *
 *   npm run bench -- client [--rounds 3] [--images 500] [--concurrency 8]
 *
 * Each round runs on a fresh stack (the optimizer, one invocation at a time, works on what lands
 * meanwhile, the same for both), alternating which of the two goes first.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient } from '../client/index.ts';
import { fileSource } from '../client/node.ts';
import { apiClient } from '../test/support/api-client.ts';
import { corpusDir } from '../test/support/corpus.ts';
import { removeDir } from '../test/support/stack-process.ts';
import { uniqueJpeg } from './support/files.ts';
import { countOption, type Log, type PartResult } from './support/report.ts';
import { startBenchStack } from './support/stack.ts';
import { distribution } from './support/stats.ts';

/** `count` distinct JPEGs cycled from the corpus's, each tagged with a comment; their paths. */
async function writePhotos(dir: string, count: number, round: number): Promise<string[]> {
  const valid = path.join(corpusDir, 'valid');
  const names = (await readdir(valid)).filter((name) => /\.jpe?g$/i.test(name)).sort();
  const originals = await Promise.all(names.map((name) => readFile(path.join(valid, name))));
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const file = path.join(dir, `r${round}-${String(i).padStart(4, '0')}.jpg`);
      await writeFile(file, uniqueJpeg(originals[i % originals.length] as Buffer, `bench ${round} ${i}`));
      return file;
    }),
  );
}

interface Timing {
  /** Start to the last PUT done (hashing and the batch included). */
  totalMs: number;
  /** Batch created to the last PUT done. */
  putsMs: number;
}

async function withLibrary(api: string, files: readonly string[], concurrency: number): Promise<Timing> {
  const started = performance.now();
  let created = 0;
  const client = createClient({ api, token: `bench-lib-${Date.now()}` });
  const result = await client.uploadFiles(await Promise.all(files.map(fileSource)), {
    concurrency,
    onBatch: () => {
      created = performance.now();
    },
  });
  const done = performance.now();
  const notUploaded = result.files.filter((file) => file.status !== 'uploaded');
  if (notUploaded.length > 0) throw new Error(`library: ${notUploaded.length} not uploaded`);
  return { totalMs: done - started, putsMs: done - created };
}

async function withBareLoop(api: string, files: readonly string[], concurrency: number): Promise<Timing> {
  const started = performance.now();
  const client = apiClient(api, `bench-bare-${Date.now()}`);
  const declared = await Promise.all(
    files.map(async (file) => {
      const bytes = await readFile(file);
      return {
        name: path.basename(file),
        type: 'image/jpeg',
        size: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      };
    }),
  );
  const batch = await client.createBatch(declared);
  const created = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < batch.items.length) {
        const i = next++;
        const upload = batch.items[i]?.upload;
        if (!upload) throw new Error(`bare loop: item ${i} has no upload`);
        const response = await fetch(upload.url, {
          method: upload.method,
          headers: upload.headers,
          body: await readFile(files[i] as string),
        });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`bare loop: PUT ${i}: ${response.status}`);
      }
    }),
  );
  const done = performance.now();
  return { totalMs: done - started, putsMs: done - created };
}

export default async function runClientBench(log: Log, args: readonly string[] = []): Promise<PartResult> {
  const rounds = countOption(args, '--rounds', 3);
  const count = countOption(args, '--images', 500);
  const concurrency = countOption(args, '--concurrency', 8);
  const dir = await mkdtemp(path.join(tmpdir(), 'photo-intake-client-bench-'));
  const library: Timing[] = [];
  const bare: Timing[] = [];
  let bytes = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      const libraryFiles = await writePhotos(dir, count, round * 2);
      const bareFiles = await writePhotos(dir, count, round * 2 + 1);
      if (round === 0) {
        for (const file of libraryFiles) bytes += (await readFile(file)).length;
        log(
          `client: ${count} photos (${(bytes / 2 ** 20).toFixed(0)} MiB), ${concurrency} PUTs at once, ${rounds} rounds`,
        );
      }
      const bench = await startBenchStack({ env: { OPTIMIZER_CONCURRENCY: '1' } });
      try {
        const runLibrary = async () =>
          library.push(await withLibrary(bench.stack.url, libraryFiles, concurrency));
        const runBare = async () => bare.push(await withBareLoop(bench.stack.url, bareFiles, concurrency));
        if (round % 2 === 0) {
          await runLibrary();
          await runBare();
        } else {
          await runBare();
          await runLibrary();
        }
      } finally {
        await bench.close();
      }
      log(
        `  round ${round + 1}: library ${library.at(-1)?.totalMs.toFixed(0)} ms (PUTs ${library.at(-1)?.putsMs.toFixed(0)}), ` +
          `bare loop ${bare.at(-1)?.totalMs.toFixed(0)} ms (PUTs ${bare.at(-1)?.putsMs.toFixed(0)})`,
      );
    }
  } finally {
    await removeDir(dir);
  }
  const libraryTotal = distribution(library.map((t) => t.totalMs));
  const bareTotal = distribution(bare.map((t) => t.totalMs));
  const libraryPuts = distribution(library.map((t) => t.putsMs));
  const barePuts = distribution(bare.map((t) => t.putsMs));
  const ratio = libraryTotal.p50 / bareTotal.p50;
  return {
    lines: [
      { name: `library, ${count} photos: start to all PUTs done`, unit: 'ms', dist: libraryTotal },
      { name: `bare loop, ${count} photos: start to all PUTs done`, unit: 'ms', dist: bareTotal },
      { name: 'library, batch created to all PUTs done', unit: 'ms', dist: libraryPuts },
      { name: 'bare loop, batch created to all PUTs done', unit: 'ms', dist: barePuts },
      {
        name: 'library / bare loop (p50, start to all PUTs done)',
        unit: 'x',
        value: Number(ratio.toFixed(2)),
        target: '<= 1.2',
        pass: ratio <= 1.2,
      },
    ],
    details: { count, bytes, concurrency, rounds, library, bare },
  };
}
