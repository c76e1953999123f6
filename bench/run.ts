/**
 * `npm run bench`: the API, load, pipeline, client, optimizer, cold-start and function benchmarks, in
 * that order, then a summary table. A part that fails is reported and the others still run (exit code 1). Each
 * part prints the command that reproduces it; the machine's load average at the start and end of each
 * part goes into the results.
 * Results are also written to `bench/results/<timestamp>.json` (git-ignored).
 *
 *   npm run bench                     # every part
 *   npm run bench -- api load         # only these parts
 *   npm run bench -- api --iterations 50 --cpu-prof
 *
 * Options after the part names go to every part: `--iterations N` (api), `--images N`,
 * `--rounds N`, `--photos corpus|large|small`, `--floor-images N`, `--concurrency N`, `--heap-diff`
 * (load), `--runs N` (optimizer, coldstart), `--cpu-prof` (api and load: the stack runs under
 * `node --cpu-prof` and the part prints where its CPU time went).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Log, loadAverage, type PartResult, type SummaryRow, summaryTable } from './support/report.ts';

type PartRunner = (log: Log, args: readonly string[]) => Promise<PartResult | undefined>;

/** Each part is imported only when it runs, so one that fails to load fails alone. */
const PARTS: Record<string, () => Promise<PartRunner>> = {
  api: async () => (await import('./api.ts')).default,
  load: async () => (await import('./load.ts')).default,
  pipeline: async () => (await import('./pipeline.ts')).default,
  client: async () => (await import('./client.ts')).default,
  optimizer: async () => {
    const run = (await import('./optimizer.ts')).default as (
      log: Log,
      args?: readonly string[],
    ) => Promise<void>;
    return async (log, args) => {
      await run(log, args);
      return undefined;
    };
  },
  coldstart: async () => (await import('./coldstart.ts')).default,
  function: async () => (await import('./function.ts')).default,
};

interface PartRecord {
  part: string;
  status: 'ok' | 'error';
  durationMs: number;
  /** The machine's 1, 5 and 15 minute load averages when the part started and ended. */
  loadAverage: { start: number[]; end: number[] };
  error?: string;
  result?: PartResult;
  /** Everything the part printed. */
  log: string[];
}

function parseArgs(argv: readonly string[]): { parts: string[]; options: string[] } {
  const parts: string[] = [];
  let i = 0;
  for (; i < argv.length && !(argv[i] as string).startsWith('--'); i++) parts.push(argv[i] as string);
  const unknown = parts.filter((part) => !(part in PARTS));
  if (unknown.length > 0) {
    throw new Error(`unknown part(s): ${unknown.join(', ')}; choose from ${Object.keys(PARTS).join(', ')}`);
  }
  // Always in the canonical order, each once.
  const chosen =
    parts.length === 0 ? Object.keys(PARTS) : Object.keys(PARTS).filter((p) => parts.includes(p));
  return { parts: chosen, options: argv.slice(i) };
}

const errorText = (error: unknown) =>
  error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);

async function main(): Promise<number> {
  const { parts, options } = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const machine = {
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    totalMemoryMiB: Math.round(os.totalmem() / 2 ** 20),
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
  console.log(
    `bench: ${parts.join(', ')}${options.length ? ` (${options.join(' ')})` : ''} on ${machine.cpus} CPUs ` +
      `(${machine.cpuModel}), node ${machine.node}, load average ${machine.loadAverageAtStart.join(' ')}`,
  );

  const records: PartRecord[] = [];
  for (const part of parts) {
    console.log(`\n=== ${part} ===`);
    const lines: string[] = [];
    const log: Log = (line) => {
      lines.push(line);
      console.log(line);
    };
    const started = performance.now();
    const loadAtStart = loadAverage();
    const load = () => ({ start: loadAtStart, end: loadAverage() });
    try {
      const run = await (PARTS[part] as () => Promise<PartRunner>)();
      const result = await run(log, options);
      records.push({
        part,
        status: 'ok',
        durationMs: performance.now() - started,
        loadAverage: load(),
        ...(result ? { result } : {}),
        log: lines,
      });
    } catch (error) {
      console.error(`${part} failed: ${errorText(error)}`);
      records.push({
        part,
        status: 'error',
        durationMs: performance.now() - started,
        loadAverage: load(),
        error: errorText(error),
        log: lines,
      });
    }
    const record = records.at(-1);
    console.log(
      `=== ${part}: ${record?.status} in ${((performance.now() - started) / 1000).toFixed(1)} s; load average ` +
        `${record?.loadAverage.start.join(' ')} at the start, ${record?.loadAverage.end.join(' ')} at the end ===`,
    );
  }

  const rows: SummaryRow[] = records.flatMap((record) =>
    record.status === 'error'
      ? [{ part: record.part, line: { name: `FAILED: ${firstLine(record.error)}`, unit: '' } }]
      : record.result
        ? record.result.lines.map((line) => ({ part: record.part, line }))
        : [{ part: record.part, line: { name: 'completed (figures in its log above)', unit: '' } }],
  );
  console.log('\n=== summary ===');
  for (const line of summaryTable(rows)) console.log(line);

  const resultsDir = path.resolve(import.meta.dirname, 'results');
  await mkdir(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const document = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) },
    parts: records,
  };
  await writeFile(file, `${JSON.stringify(document, null, 2)}\n`);
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
  return records.some((record) => record.status === 'error') ? 1 : 0;
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]?.slice(0, 100) ?? '';
}

process.exitCode = await main().catch((error: unknown) => {
  console.error(errorText(error));
  return 2;
});
