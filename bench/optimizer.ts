/**
 * Optimizer benchmark: the image core (`processImage`, default variant set) against the same
 * variants made by a minimal sharp script (the floor), by "decode once at full size, clone per
 * variant", and by ImageMagick, on the corpus JPEG photos plus a generated 5120x2880 JPEG; then peak
 * RSS of each, measured in a fresh child process.
 *
 *   node bench/optimizer.ts [--runs 5] [--sharp-concurrency 1]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp, { type Sharp } from 'sharp';
import { configureSharp } from '../functions/optimizer/image/configure.ts';
import { processImage } from '../functions/optimizer/image/process.ts';
import { DEFAULT_VARIANTS, type VariantSpec } from '../functions/shared/variants.ts';
import { countOption, loadAverage, reproduceCommand } from './support/report.ts';

const projectRoot = path.resolve(import.meta.dirname, '..');
const corpusDir = path.resolve(projectRoot, '..', 'shared', 'corpus');
const LIMITS = { maxInputPixels: 100_000_000, maxFrames: 200, timeoutMs: 120_000 };
const SPECS = DEFAULT_VARIANTS;
const TURBO_SPECS = SPECS.map((spec) => (spec.format === 'jpeg' ? { ...spec, effort: 0 } : spec));

interface Photo {
  name: string;
  file: string;
  bytes: Buffer;
  megapixels: number;
}

type Method = (photo: Photo) => Promise<unknown>;

/** The same encoder settings the core uses for each spec, so only the pipeline differs. */
function encode(pipeline: Sharp, spec: VariantSpec): Sharp {
  if (spec.format === 'jpeg') {
    return pipeline
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: spec.quality, mozjpeg: true, optimiseScans: (spec.effort ?? 1) >= 2 });
  }
  if (spec.format === 'webp') return pipeline.webp({ quality: spec.quality, effort: spec.effort ?? 4 });
  return pipeline.avif({ quality: spec.quality, effort: spec.effort ?? 4 });
}

const box = (spec: VariantSpec) =>
  ({ width: spec.width, height: spec.height, fit: spec.fit, withoutEnlargement: true }) as const;

/** The floor: what a minimal sharp script does for the default set, one shrink-on-load pipeline per variant. */
export function plainSharpVariants(bytes: Buffer, specs: readonly VariantSpec[] = SPECS): Promise<Buffer[]> {
  return Promise.all(
    specs.map((spec) => encode(sharp(bytes).autoOrient().resize(box(spec)), spec).toBuffer()),
  );
}

const METHODS: Record<string, Method> = {
  /** The image core, as the Lambda runs it: sniff, header limits, one shrink-on-load decode, placeholder. */
  core: (photo) => processImage(photo.bytes, SPECS, LIMITS),
  /** The core with libjpeg-turbo for the JPEG (effort 0), the encoder ImageMagick uses. */
  'core-turbo': (photo) => processImage(photo.bytes, TURBO_SPECS, LIMITS),
  /** The floor: what a minimal script does, one shrink-on-load pipeline per variant, in parallel. */
  plain: (photo) => plainSharpVariants(photo.bytes),
  /** The other way to decode once: the full-size image to raw memory, then one clone per variant. */
  'full-decode': async (photo) => {
    const { data, info } = await sharp(photo.bytes).autoOrient().raw().toBuffer({ resolveWithObject: true });
    const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
    return Promise.all(SPECS.map((spec) => encode(sharp(data, raw).resize(box(spec)), spec).toBuffer()));
  },
};

/** The first ImageMagick on PATH (`magick` for IM7, `convert` for IM6), skipping look-alikes. */
function findMagick(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const name of ['magick', 'convert']) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      const probe = spawnSync(candidate, ['-version'], { encoding: 'utf8' });
      if (probe.status === 0 && probe.stdout.startsWith('Version: ImageMagick')) return candidate;
    }
  }
  return undefined;
}

/** One ImageMagick run per image: decode once (with libjpeg's DCT scaling hint), write every variant. */
function magickMethod(outDir: string): { method: Method; version: string } | string {
  const magick = findMagick();
  if (!magick) return 'ImageMagick (`magick` or `convert`) is not installed: skipped';
  const version = spawnSync(magick, ['-version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? magick;
  const formats = spawnSync(magick, ['-list', 'format'], { encoding: 'utf8' }).stdout;
  if (!/^\s*WEBP\*?\s/m.test(formats)) return `${version} has no WebP support: skipped`;
  const [thumb, medium, large] = SPECS as [VariantSpec, VariantSpec, VariantSpec];
  const resize = (spec: VariantSpec) => `${spec.width}x${spec.height}>`;
  const method: Method = async (photo) => {
    const args = [
      '-define',
      `jpeg:size=${large.width * 2}x${large.height * 2}`,
      photo.file,
      '-auto-orient',
      '-strip',
      '-colorspace',
      'sRGB',
      ...['(', '+clone', '-resize', resize(large), '-background', 'white', '-flatten'],
      ...['-quality', String(large.quality), '-write', path.join(outDir, 'large.jpg'), '+delete', ')'],
      ...['(', '+clone', '-resize', resize(medium), '-quality', String(medium.quality)],
      ...['-define', 'webp:method=4', '-write', path.join(outDir, 'medium.webp'), '+delete', ')'],
      ...['-resize', resize(thumb), '-quality', String(thumb.quality), '-define', 'webp:method=4'],
      path.join(outDir, 'thumb.webp'),
    ];
    const result = spawnSync(magick, args, { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`ImageMagick failed: ${result.stderr}`);
  };
  return { method, version };
}

/** A 5120x2880 (14.7 MP) photo-like JPEG: the corpus' benchmark photo, enlarged, with sensor-like noise. */
async function generateLargeJpeg(file: string): Promise<void> {
  const width = 5120;
  const height = 2880;
  const base = await sharp(path.join(corpusDir, 'valid', 'sharp--2569067123_aca715a2ee_o.jpg'))
    .resize(width, height, { fit: 'cover' })
    .raw()
    .toBuffer();
  const noise = await sharp({
    create: {
      width,
      height,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 24 },
    },
  })
    .raw()
    .toBuffer();
  const raw = { width, height, channels: 3 } as const;
  await sharp(base, { raw })
    .composite([{ input: noise, raw, blend: 'soft-light' }])
    .jpeg({ quality: 90 })
    .toFile(file);
}

async function loadPhotos(largeFile: string): Promise<Photo[]> {
  const files = readdirSync(path.join(corpusDir, 'valid'))
    .filter((name) => /\.jpe?g$/i.test(name))
    .sort()
    .map((name) => path.join(corpusDir, 'valid', name));
  const photos: Photo[] = [];
  for (const file of [...files, largeFile]) {
    const bytes = readFileSync(file);
    const meta = await sharp(bytes).metadata();
    photos.push({
      name: path.basename(file),
      file,
      bytes,
      megapixels: ((meta.width ?? 0) * (meta.height ?? 0)) / 1e6,
    });
  }
  return photos;
}

interface Sample {
  wallMs: number;
  cpuMs: number;
}

/** CPU time of waited-for child processes (ImageMagick), from /proc; NaN where there is none. */
function childrenCpuMs(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 16 and 17 (cutime, cstime), in clock ticks of 1/100 s on Linux.
    return (Number(fields[13]) + Number(fields[14])) * 10;
  } catch {
    return Number.NaN;
  }
}

async function measure(method: Method, photo: Photo): Promise<Sample> {
  const cpu = process.cpuUsage();
  const children = childrenCpuMs();
  const started = performance.now();
  await method(photo);
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000 + (childrenCpuMs() - children) };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

const pad = (text: string, width: number) => text.padStart(width);
const fixed = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** Runs each method on each photo, interleaved, and reports median wall (and CPU) time. */
async function compare(
  log: (line: string) => void,
  photos: Photo[],
  methods: Record<string, Method>,
  runs: number,
): Promise<Record<string, { wallMs: number; cpuMs: number }>> {
  const names = Object.keys(methods);
  const totals = Object.fromEntries(names.map((n) => [n, { wallMs: 0, cpuMs: 0 }]));
  log(`${'photo'.padEnd(40)}${pad('MP', 6)}${names.map((n) => pad(`${n} ms`, 16)).join('')}`);
  for (const photo of photos) {
    const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (const name of names) await measure(methods[name] as Method, photo); // warm-up
    for (let run = 0; run < runs; run++) {
      for (const name of names) samples[name]?.push(await measure(methods[name] as Method, photo));
    }
    const cells = names.map((name) => {
      const wall = median((samples[name] ?? []).map((s) => s.wallMs));
      const cpu = median((samples[name] ?? []).map((s) => s.cpuMs));
      const total = totals[name] as { wallMs: number; cpuMs: number };
      total.wallMs += wall;
      total.cpuMs += cpu;
      return pad(`${fixed(wall)} (${fixed(cpu)})`, 16);
    });
    log(`${photo.name.slice(0, 39).padEnd(40)}${pad(fixed(photo.megapixels, 1), 6)}${cells.join('')}`);
  }
  const megapixels = photos.reduce((sum, p) => sum + p.megapixels, 0);
  log(
    `${'all photos, sum of medians'.padEnd(40)}${pad(fixed(megapixels, 1), 6)}${names
      .map((n) => pad(`${fixed(totals[n]?.wallMs ?? 0)} (${fixed(totals[n]?.cpuMs ?? 0)})`, 16))
      .join('')}`,
  );
  log(
    `${'throughput, MP/s (wall)'.padEnd(46)}${names
      .map((n) => pad(fixed(megapixels / ((totals[n]?.wallMs ?? 0) / 1000), 1), 16))
      .join('')}`,
  );
  return totals;
}

/**
 * The process's RSS high-water mark. On Linux from `VmHWM`: `getrusage`'s `maxRSS` survives `execve`,
 * so a child spawned by a big parent would report the parent's peak.
 */
/**
 * How fast the limits answer: the wall-clock figures that used to be thresholds in the tests (the
 * tests now prove what happens, `test/integration/image/process.test.ts`; this says how fast).
 */
async function limitTimings(log: (line: string) => void, runs: number): Promise<void> {
  log('### Limits (median ms; targets in parentheses)');
  const timed = async (run: () => Promise<unknown>) => {
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await run().catch(() => undefined);
      samples.push(performance.now() - started);
    }
    return median(samples);
  };
  const bomb = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: '#808080' } })
    .jpeg()
    .toBuffer();
  const heic = readFileSync(path.join(corpusDir, 'valid', 'exif-samples--IMG_5195.HEIC'));
  const jolla = readFileSync(path.join(corpusDir, 'valid', 'exif-samples--jolla.jpg'));
  const rows: [string, number, number][] = [
    [
      '6 MP JPEG over a 5 MP cap, refused',
      await timed(() => processImage(bomb, SPECS, { ...LIMITS, maxInputPixels: 5_000_000 })),
      200,
    ],
    [
      '8.5 MP HEIC over its cap, refused',
      await timed(() => processImage(heic, SPECS, { ...LIMITS, maxInputPixels: 2566 * 3313 - 1 })),
      500,
    ],
    [
      'JPEG with a 5 ms time limit, stopped',
      await timed(() => processImage(jolla, SPECS, { ...LIMITS, timeoutMs: 5 })),
      1_000,
    ],
    [
      'HEIC with a 150 ms time limit, stopped',
      await timed(() => processImage(heic, SPECS, { ...LIMITS, timeoutMs: 150 })),
      600,
    ],
  ];
  for (const [what, ms, target] of rows) log(`${what.padEnd(44)} ${pad(fixed(ms), 8)}  (< ${target})`);
  // The event loop while libheif decodes in its worker: ticks of a 10 ms timer against elapsed time.
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  const started = performance.now();
  await processImage(heic, SPECS, LIMITS);
  const elapsed = performance.now() - started;
  clearInterval(ticker);
  log(`event loop during a HEIC decode: ${ticks} ticks of 10 ms in ${fixed(elapsed)} ms (target > 50%)`);
}

function peakRssMb(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match?.[1]) return Number(match[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

/** Child-process mode: process one file once with one method and print the peak RSS. */
async function peakRssChild(methodName: string, file: string, concurrency: number): Promise<void> {
  configureSharp({ concurrency });
  const bytes = readFileSync(file);
  const photo: Photo = { name: path.basename(file), file, bytes, megapixels: 0 };
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } })
    .png()
    .toBuffer(); // load libvips before the baseline
  const baselineMb = process.memoryUsage().rss / 2 ** 20;
  const method = METHODS[methodName];
  if (!method) throw new Error(`unknown method ${methodName}`);
  await method(photo);
  const peakMb = peakRssMb();
  process.stdout.write(`${JSON.stringify({ baselineMb, peakMb })}\n`);
}

function peakRss(
  methodName: string,
  file: string,
  concurrency: number,
): { baselineMb: number; peakMb: number } {
  const child = spawnSync(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      '--peak-rss',
      methodName,
      file,
      '--sharp-concurrency',
      String(concurrency),
    ],
    { encoding: 'utf8' },
  );
  if (child.status !== 0) throw new Error(`peak RSS child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as { baselineMb: number; peakMb: number };
}

/** Runs the whole optimizer benchmark, writing report lines to `log`. */
export default async function runOptimizerBench(
  log: (line: string) => void,
  args: readonly string[] = [],
): Promise<void> {
  const runs = countOption(args, '--runs', 5);
  const concurrency = countOption(args, '--sharp-concurrency', 1);
  const command = reproduceCommand('optimizer', { '--runs': runs, '--sharp-concurrency': concurrency });
  const loadAtStart = loadAverage();
  log(`reproduce: ${command}`);
  log(`load average at start: ${loadAtStart.join(' ')}`);
  const settings = configureSharp({ concurrency });
  const work = mkdtempSync(path.join(os.tmpdir(), 'optimizer-bench-'));
  try {
    const largeFile = path.join(work, 'generated-5120x2880.jpg');
    await generateLargeJpeg(largeFile);
    const photos = await loadPhotos(largeFile);
    const magick = magickMethod(work);
    log('## Optimizer benchmark');
    log(
      `node ${process.version}, sharp ${settings.versions.sharp}, libvips ${settings.versions.vips}, ` +
        `${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), sharp.concurrency ${settings.concurrency}`,
    );
    if (typeof magick !== 'string') log(magick.version);
    log(
      `variants: ${SPECS.map((s) => `${s.name} ${s.width}x${s.height} ${s.format} q${s.quality}`).join(', ')}`,
    );
    log(
      `median of ${runs} runs after a warm-up; ms per image: wall (CPU of all threads and child processes)`,
    );
    log('');
    const methods: Record<string, Method> = { ...METHODS };
    if (typeof magick === 'string') log(magick);
    else methods.magick = magick.method;
    const totals = await compare(log, photos, methods, runs);
    const core = totals.core?.wallMs ?? Number.NaN;
    log('');
    const coreCpu = totals.core?.cpuMs ?? Number.NaN;
    log(
      `core / plain sharp: ${fixed(core / (totals.plain?.wallMs ?? Number.NaN), 2)} wall, ` +
        `${fixed(coreCpu / (totals.plain?.cpuMs ?? Number.NaN), 2)} CPU  (target <= 1.10)`,
    );
    if (totals.magick) {
      log(
        `ImageMagick / core: ${fixed(totals.magick.wallMs / core, 1)}x wall, ` +
          `${fixed(totals.magick.cpuMs / coreCpu, 1)}x CPU  (target >= 5x)`,
      );
      const turbo = totals['core-turbo'];
      if (turbo) {
        log(
          `ImageMagick / core-turbo (same JPEG encoder as ImageMagick): ${fixed(totals.magick.wallMs / turbo.wallMs, 1)}x wall, ` +
            `${fixed(totals.magick.cpuMs / turbo.cpuMs, 1)}x CPU`,
        );
      }
    }

    log('');
    log('### sharp.concurrency (core, 5120x2880 JPEG and the iPhone HDR JPEG)');
    const tuning = photos.filter((p) => p.file === largeFile || p.name.includes('iphone_hdr'));
    for (const threads of [1, 2, 4]) {
      sharp.concurrency(threads);
      const samples: Sample[] = [];
      for (const photo of tuning) await measure(METHODS.core as Method, photo);
      for (let run = 0; run < runs; run++) {
        let wallMs = 0;
        let cpuMs = 0;
        for (const photo of tuning) {
          const s = await measure(METHODS.core as Method, photo);
          wallMs += s.wallMs;
          cpuMs += s.cpuMs;
        }
        samples.push({ wallMs, cpuMs });
      }
      log(
        `concurrency ${threads}: ${fixed(median(samples.map((s) => s.wallMs)))} ms wall, ` +
          `${fixed(median(samples.map((s) => s.cpuMs)))} ms CPU for both`,
      );
    }
    sharp.concurrency(settings.concurrency);

    log('');
    await limitTimings(log, runs);

    log('');
    log('### Peak RSS (fresh process, one image; baseline = after loading sharp and reading the file)');
    const heif = path.join(corpusDir, 'valid', 'exif-samples--HMD_Nokia_8.3_5G.heif');
    for (const [methodName, file] of [
      ['core', largeFile],
      ['plain', largeFile],
      ['full-decode', largeFile],
      ['core', heif],
    ] as const) {
      const { baselineMb, peakMb } = peakRss(methodName, file, settings.concurrency);
      log(
        `${methodName.padEnd(12)} ${path.basename(file).padEnd(36)} baseline ${fixed(baselineMb)} MB, ` +
          `peak ${fixed(peakMb)} MB (+${fixed(peakMb - baselineMb)} MB)`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  log(`load average at end: ${loadAverage().join(' ')} (at start ${loadAtStart.join(' ')})`);
  log(`reproduce: ${command}`);
}

const runDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (runDirectly) {
  const args = process.argv.slice(2);
  if (args[0] === '--peak-rss') {
    await peakRssChild(args[1] ?? 'core', args[2] ?? '', countOption(args, '--sharp-concurrency', 1));
  } else {
    await runOptimizerBench((line) => console.log(line), args);
  }
}
