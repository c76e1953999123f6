import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of the profiled run, in µs of the monotonic clock (`process.hrtime`), which V8's
 * profiles use too, so spans timed in the bench process map onto the stack's profile. */
export interface ProfileWindow {
  name: string;
  startUs: number;
  endUs: number;
}

export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

const projectRoot = path.resolve(import.meta.dirname, '..', '..');
const PSEUDO = new Set(['(garbage collector)', '(idle)', '(program)', '(root)']);

/** Where a frame's code lives: an npm package, a project file, Node itself, or V8's pseudo-frames. */
function moduleOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return PSEUDO.has(functionName) ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node:internal';
  const file = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = file.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? file);
  }
  return path.relative(projectRoot, file);
}

const isProjectFile = (module: string) => /^(functions|local)\//.test(module);

function frameKey(frame: CallFrame): string {
  const where = frame.url ? `${moduleOf(frame)}:${frame.lineNumber + 1}` : '';
  return `${frame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

type Totals = Map<string, number>;
const add = (totals: Totals, key: string, us: number) => totals.set(key, (totals.get(key) ?? 0) + us);

class Tally {
  totalUs = 0;
  readonly selfByModule: Totals = new Map();
  readonly inclusiveByModule: Totals = new Map();
  readonly selfByFunction: Totals = new Map();
  readonly inclusiveProject: Totals = new Map();

  /** One sample: the leaf frame and its callers, leaf first. */
  add(stack: readonly CallFrame[], us: number) {
    const leaf = stack[0];
    if (!leaf) return;
    this.totalUs += us;
    add(this.selfByModule, moduleOf(leaf), us);
    add(this.selfByFunction, frameKey(leaf), us);
    const modules = new Set<string>();
    const functions = new Set<string>();
    for (const frame of stack) {
      const module = moduleOf(frame);
      modules.add(module);
      if (isProjectFile(module)) functions.add(frameKey(frame));
    }
    for (const module of modules) add(this.inclusiveByModule, module, us);
    for (const key of functions) add(this.inclusiveProject, key, us);
  }

  summary(top: number) {
    const ranked = (totals: Totals, n: number) =>
      [...totals]
        .sort((a, b) => b[1] - a[1])
        .slice(0, n)
        .map(([key, us]) => ({ key, ms: us / 1000 }));
    return {
      totalMs: this.totalUs / 1000,
      selfByModule: ranked(this.selfByModule, top),
      inclusiveByModule: ranked(this.inclusiveByModule, top),
      selfByFunction: ranked(this.selfByFunction, top),
      inclusiveProjectFunctions: ranked(this.inclusiveProject, top),
    };
  }
}

/**
 * Summarizes every `.cpuprofile` in a directory (one per process or thread), for the whole run and
 * for each window: total sampled time; self time by module and by function; inclusive time by
 * module and by project function (each counted once per sample, however deep it recurs).
 */
export async function summarizeProfiles(dir: string, windows: readonly ProfileWindow[] = [], top = 12) {
  const all = new Tally();
  const perWindow = windows.map(() => new Tally());
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  for (const file of files) {
    const profile = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parent = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const stacks = new Map<number, CallFrame[]>();
    const stackOf = (id: number) => {
      let stack = stacks.get(id);
      if (!stack) {
        stack = [];
        for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
          const frame = byId.get(at)?.callFrame;
          if (frame && frame.functionName !== '(root)') stack.push(frame);
        }
        stacks.set(id, stack);
      }
      return stack;
    };
    let at = profile.startTime;
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0;
      at += us;
      const stack = stackOf(id);
      all.add(stack, us);
      windows.forEach((w, j) => {
        if (at >= w.startUs && at <= w.endUs) perWindow[j]?.add(stack, us);
      });
    });
  }
  const sections = [
    { name: 'whole run', ...all.summary(top) },
    ...windows.map((w, j) => ({
      name: w.name,
      wallMs: (w.endUs - w.startUs) / 1000,
      ...(perWindow[j] as Tally).summary(top),
    })),
  ];
  const lines: string[] = [`  ${files.length} profile(s)`];
  for (const section of sections) {
    const pct = (ms: number) => `${((100 * ms) / section.totalMs).toFixed(1).padStart(5)}%`;
    const row = ({ key, ms }: { key: string; ms: number }) =>
      `      ${ms.toFixed(0).padStart(7)} ms ${pct(ms)}  ${key}`;
    const wall = 'wallMs' in section ? `, ${section.wallMs.toFixed(0)} ms wall` : '';
    lines.push(
      `  -- ${section.name}: ${section.totalMs.toFixed(0)} ms sampled${wall}`,
      '    inclusive by module:',
      ...section.inclusiveByModule.map(row),
      '    self by module:',
      ...section.selfByModule.map(row),
      '    inclusive by project function:',
      ...section.inclusiveProjectFunctions.map(row),
      '    self by function:',
      ...section.selfByFunction.map(row),
    );
  }
  return { lines, data: { files, sections } };
}
