import { mkdir, mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { removeDir, type StackProcess, startStackProcess } from '../../test/support/stack-process.ts';

/** Limits that would otherwise throttle a benchmark's single owner. */
export const UNLIMITED = { REQUESTS_PER_MINUTE: '1000000', MAX_OPEN_UPLOADS: '1000000' };

export interface BenchStack {
  stack: StackProcess;
  /** The stack's DATA_DIR (removed by `close`). */
  dataDir: string;
  /** The stack's own TMPDIR, so that temp files it leaves are counted apart from other processes'. */
  tmpDir: string;
  /** Stops the stack (SIGTERM), then removes its directories; returns the exit code. */
  close(): Promise<number | null>;
}

/**
 * Starts `npm start`'s entry point as a child process (test/support/stack-process.ts) with a fresh
 * DATA_DIR and TMPDIR under one temp root, which `close` removes.
 */
export async function startBenchStack(
  options: { env?: Record<string, string>; cpuProfileDir?: string; nodeOptions?: readonly string[] } = {},
): Promise<BenchStack> {
  const env = { ...options.env };
  const nodeOptions = [process.env.NODE_OPTIONS ?? '', ...(options.nodeOptions ?? [])];
  if (options.cpuProfileDir) {
    await mkdir(options.cpuProfileDir, { recursive: true });
    nodeOptions.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`);
  }
  const joined = nodeOptions.filter(Boolean).join(' ');
  if (joined) env.NODE_OPTIONS = joined;
  const root = await mkdtemp(path.join(tmpdir(), 'photo-intake-bench-'));
  const dataDir = path.join(root, 'data');
  const tmpDir = path.join(root, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  let stack: StackProcess;
  try {
    // As `npm start` runs it (package.json): glibc arenas capped, as the deployed optimizer has them.
    stack = await startStackProcess({
      dataDir,
      env: { MALLOC_ARENA_MAX: '2', ...UNLIMITED, TMPDIR: tmpDir, ...env },
    });
  } catch (error) {
    await removeDir(root);
    throw error;
  }
  return {
    stack,
    dataDir,
    tmpDir,
    async close() {
      try {
        return await stack.stop('SIGTERM');
      } finally {
        await removeDir(root);
      }
    },
  };
}

/** Bytes and files under a directory (recursive; symlinks not followed). */
export async function dirUsage(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const walk = async (current: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        files++;
        bytes += (await stat(full).catch(() => ({ size: 0 }))).size;
      }
    }
  };
  await walk(dir);
  return { bytes, files };
}

/** Entries directly in a directory (0 if it does not exist). */
export const countEntries = (dir: string) =>
  readdir(dir).then(
    (entries) => entries.length,
    () => 0,
  );

/** A process and every descendant, from /proc (Linux). */
async function processTree(rootPid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const statText = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // The command name may contain spaces and parentheses: the fields start after the last ')'.
    const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const tree: number[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

async function rssKiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(text)?.[1] ?? 0);
}

/** The summed RSS of a process and its descendants, in MiB (0 when not on Linux or gone). */
export async function treeRssMiB(pid: number): Promise<number> {
  const pids = await processTree(pid);
  const sizes = await Promise.all(pids.map(rssKiB));
  return sizes.reduce((sum, kib) => sum + kib, 0) / 1024;
}

/** Resident memory of one process split by kind (Linux): anonymous (heaps, malloc arenas) and
 * file-backed (mapped files such as LevelDB tables and shared libraries), in MiB. */
export async function rssKinds(pid: number): Promise<{ anonMiB: number; fileMiB: number; shmemMiB: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { anonMiB: kib('RssAnon') / 1024, fileMiB: kib('RssFile') / 1024, shmemMiB: kib('RssShmem') / 1024 };
}

export interface RssSampler {
  /** Highest sample so far, in MiB. */
  peak(): number;
  /** The latest sample, in MiB. */
  last(): number;
  /** Resets the peak (e.g. between rounds) and returns the previous one. */
  resetPeak(): number;
  stop(): Promise<{ peakMiB: number; samples: number }>;
}

/** Samples the RSS of `pid` and its descendants every `intervalMs`. */
export function sampleRss(pid: number, intervalMs = 200): RssSampler {
  let peak = 0;
  let last = 0;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      last = await treeRssMiB(pid);
      samples++;
      peak = Math.max(peak, last);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, intervalMs - (Date.now() - started))));
    }
  })();
  return {
    peak: () => peak,
    last: () => last,
    resetPeak() {
      const previous = peak;
      peak = last;
      return previous;
    },
    async stop() {
      running = false;
      await loop;
      return { peakMiB: peak, samples };
    },
  };
}

/** `bench/results/profile-<part>-<timestamp>` when `--cpu-prof` is among the arguments. */
export function cpuProfileDir(args: readonly string[], part: string): string | undefined {
  return args.includes('--cpu-prof') ? resultsSubdir(`profile-${part}`) : undefined;
}

/** `bench/results/<name>-<timestamp>` (not created). */
export function resultsSubdir(name: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return path.resolve(import.meta.dirname, '..', 'results', `${name}-${stamp}`);
}

/** Machine-wide CPU jiffies from /proc/stat (all CPUs summed; 10 ms each). */
export interface MachineCpu {
  busy: number;
  idle: number;
  iowait: number;
  steal: number;
}

export async function machineCpu(): Promise<MachineCpu> {
  const line = (await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0] ?? '';
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return { busy: user + nice + system + irq + softirq, idle, iowait, steal };
}

/** Shares of all CPUs' time over an interval: busy, I/O wait, stolen, used by the stack, by this
 * bench, and by every other process on the machine (other people's work on a shared machine). */
export interface CpuShares {
  busyPercent: number;
  iowaitPercent: number;
  stealPercent: number;
  stackPercent: number;
  benchPercent: number;
  othersPercent: number;
}

export const cpuMsOf = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;

export function cpuShares(
  before: MachineCpu,
  after: MachineCpu,
  used: { stackMs: number; benchMs: number },
): CpuShares {
  const d = (k: keyof MachineCpu) => after[k] - before[k];
  const totalMs = (d('busy') + d('idle') + d('iowait') + d('steal')) * 10;
  const pct = (ms: number) => (totalMs > 0 ? (100 * ms) / totalMs : Number.NaN);
  const busyPercent = pct(d('busy') * 10);
  const stackPercent = pct(used.stackMs);
  const benchPercent = pct(used.benchMs);
  return {
    busyPercent,
    iowaitPercent: pct(d('iowait') * 10),
    stealPercent: pct(d('steal') * 10),
    stackPercent,
    benchPercent,
    // Jiffy accounting is coarse: never below zero.
    othersPercent: Math.max(0, busyPercent - stackPercent - benchPercent),
  };
}

/** CPU time (user + system) of a process and all its threads, dead or alive, in ms (Linux). */
export async function processCpuMs(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return Number.isFinite(ticks) ? ticks * 10 : Number.NaN; // USER_HZ is 100 on Linux
}

/** CPU time (user + system) per thread name of a process, in ms (Linux): the main JS thread, the
 * libuv pool (sharp's work, fs, crypto), V8's helpers (GC, compilation), libvips' own threads. */
export async function threadCpuMs(pid: number): Promise<Record<string, number>> {
  const byName: Record<string, number> = {};
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const text = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ms = (Number(fields[11]) + Number(fields[12])) * 10;
    if (name && Number.isFinite(ms)) byName[name] = (byName[name] ?? 0) + ms;
  }
  return byName;
}

/** What each thread spent between two readings of `threadCpuMs`, largest first. */
export const diffCpu = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(after)
      .map(([name, ms]) => [name, ms - (before[name] ?? 0)] as const)
      .filter(([, ms]) => ms > 0)
      .sort((a, b) => b[1] - a[1]),
  );
