import os from 'node:os';
import { type Distribution, fixed } from './stats.ts';

/** One line of the summary table: a latency distribution, or a single figure. */
export interface ResultLine {
  name: string;
  unit: string;
  /** Latency-like figures. */
  dist?: Distribution;
  /** A single figure (throughput, peak RSS, ...). */
  value?: number;
  /** E.g. "p50 <= 250". */
  target?: string;
  pass?: boolean;
  note?: string;
}

export interface PartResult {
  lines: ResultLine[];
  /** Anything else worth keeping in the JSON results (parameters, per-round figures, ...). */
  details?: Record<string, unknown>;
}

export type Log = (line: string) => void;

/** The machine's load averages over 1, 5 and 15 minutes (the machine is shared: say how busy it was). */
export const loadAverage = (): number[] => os.loadavg().map((load) => Math.round(load * 100) / 100);

/**
 * A part's closing lines: the machine's load at its end beside its start (recorded in `details`)
 * and the command that reproduces it.
 */
export function closePart(
  log: Log,
  details: Record<string, unknown>,
  loadAtStart: number[],
  command: string,
) {
  const loadAtEnd = loadAverage();
  details.loadAverage = { start: loadAtStart, end: loadAtEnd };
  log(`load average at end: ${loadAtEnd.join(' ')} (at start ${loadAtStart.join(' ')})`);
  log(`reproduce: ${command}`);
}

/**
 * The command that runs one part again with the options it ran with: `options` maps each flag to
 * its value (`true` for a flag without one; `false` and `undefined` leave it out).
 */
export function reproduceCommand(
  part: string,
  options: Record<string, string | number | boolean | undefined>,
): string {
  const flags = Object.entries(options).flatMap(([flag, value]) =>
    value === undefined || value === false ? [] : value === true ? [flag] : [flag, String(value)],
  );
  return [`npm run bench -- ${part}`, ...flags].join(' ');
}

/** A progress reporter that prints at most every `everyMs`, plus the final state. */
export function progress(log: Log, label: string, total: number, everyMs = 2000) {
  let last = 0;
  return (done: number, extra = '') => {
    const t = Date.now();
    if (done < total && t - last < everyMs) return;
    last = t;
    log(`  ${label}: ${done}/${total}${extra ? ` ${extra}` : ''}`);
  };
}

export interface SummaryRow {
  part: string;
  line: ResultLine;
}

/** The final table: one row per result line, fixed-width, plain text. */
export function summaryTable(rows: readonly SummaryRow[]): string[] {
  const header = ['part', 'measure', 'n', 'p50', 'p95', 'max', 'value', 'unit', 'target', 'result'];
  const cells = rows.map(({ part, line }) => [
    part,
    line.name,
    line.dist ? String(line.dist.n) : '',
    line.dist ? fixed(line.dist.p50, 1) : '',
    line.dist ? fixed(line.dist.p95, 1) : '',
    line.dist ? fixed(line.dist.max, 1) : '',
    line.value === undefined
      ? ''
      : fixed(line.value, line.unit === 'x' ? 2 : Number.isInteger(line.value) || line.value >= 100 ? 0 : 1),
    line.unit,
    line.target ?? '',
    line.pass === undefined ? '' : line.pass ? 'pass' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const numeric = new Set([2, 3, 4, 5, 6]);
  const render = (row: readonly string[]) =>
    row
      .map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [render(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(render)];
}

/** A count given on the command line as `name N` (a positive integer), or the fallback. */
export function countOption(args: readonly string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  const value = at >= 0 ? Number(args[at + 1]) : Number.NaN;
  return Number.isInteger(value) && value > 0 ? value : fallback;
}
