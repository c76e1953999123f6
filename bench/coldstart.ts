/**
 * Cold-start benchmark: for each function, the time from a fresh Node.js 24 process to its handler
 * ready to serve, from the bundled asset `cdk synth` writes, started as Lambda would start it (the
 * asset alone in an empty folder, the template's environment; test/support/lambda-assets.ts, shared
 * with test/infra/function-start.test.ts). Each start is followed by one invocation against the
 * local emulators (in this process) to show the handler serves: the API a health request, the
 * optimizer an empty SQS batch, the reconciler a scheduled event, the relay a stream batch with no
 * outbox row, the notifier an empty SQS batch.
 *
 * Then what the API bundle holds: esbuild's metafile of a build with the options the stack bundles
 * with (lib/constructs/pipeline-function.ts), the biggest inputs by package and by file.
 *
 *   node bench/coldstart.ts [--runs 10]
 *
 * "spawn to ready" is measured here, from `spawn` to the child's saying its handler module is
 * imported (so it includes exec and Node's own start); "in process" is the child's own
 * `performance.now()` at that point (from its time origin). The synth takes about half a minute
 * (esbuild, and npm for the optimizer's native packages) and is not timed.
 */
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { BUNDLE_ALIASES } from '../lib/constructs/pipeline-function.ts';
import { projectRoot } from '../test/support/corpus.ts';
import {
  type DeployedFunctions,
  deployFunctions,
  FUNCTION_NAMES,
  type FunctionName,
  type Invocation,
  invokeFresh,
  startLocalResources,
} from '../test/support/lambda-assets.ts';
import {
  closePart,
  countOption,
  type Log,
  loadAverage,
  type PartResult,
  type ResultLine,
  reproduceCommand,
  summaryTable,
} from './support/report.ts';
import { distribution, fixed } from './support/stats.ts';

const TARGET_API_MS = 300;

/** An event each function handles without any upload: what "ready to serve" is checked with. */
function eventFor(name: FunctionName): unknown {
  const now = new Date();
  if (name === 'api') {
    return {
      version: '2.0',
      routeKey: 'GET /v1/health',
      rawPath: '/v1/health',
      rawQueryString: '',
      headers: {},
      isBase64Encoded: false,
      requestContext: {
        accountId: '000000000000',
        apiId: 'coldstart',
        domainName: 'coldstart.execute-api.us-east-1.amazonaws.com',
        domainPrefix: 'coldstart',
        http: {
          method: 'GET',
          path: '/v1/health',
          protocol: 'HTTP/1.1',
          sourceIp: '127.0.0.1',
          userAgent: 'bench',
        },
        requestId: `coldstart-${now.getTime()}`,
        routeKey: 'GET /v1/health',
        stage: '$default',
        time: now.toUTCString(),
        timeEpoch: now.getTime(),
      },
    };
  }
  if (name === 'optimizer' || name === 'notifier') return { Records: [] };
  if (name === 'relay') {
    // A status move: the stream filter would not even hand it on; the relay relays nothing.
    return {
      Records: [{ eventName: 'MODIFY', dynamodb: { NewImage: { pk: { S: 'B#x' }, sk: { S: '#BATCH' } } } }],
    };
  }
  return {
    version: '0',
    id: `coldstart-${now.getTime()}`,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '000000000000',
    time: now.toISOString(),
    region: 'us-east-1',
    resources: ['arn:aws:events:us-east-1:000000000000:rule/coldstart'],
    detail: {},
  };
}

export interface BundleInput {
  name: string;
  kib: number;
}

/**
 * The API bundle as the stack builds it (the options of lib/constructs/pipeline-function.ts, which
 * NodejsFunction turns into esbuild flags), with esbuild's metafile: bytes in the output by package
 * and by file.
 */
export async function apiBundleInputs(): Promise<{
  bytes: number;
  byPackage: BundleInput[];
  byFile: BundleInput[];
}> {
  const result = await build({
    entryPoints: [path.join(projectRoot, 'functions', 'api', 'handler.ts')],
    absWorkingDir: projectRoot,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    mainFields: ['module', 'main'],
    minify: true,
    keepNames: true,
    alias: { ...BUNDLE_ALIASES },
    banner: {
      js: "import { createRequire as __pipelineCreateRequire } from 'node:module'; const require = __pipelineCreateRequire(import.meta.url);",
    },
    outfile: path.join(tmpdir(), 'coldstart-api', 'index.mjs'),
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs).find(
    (o) => o.entryPoint,
  ) as Metafile['outputs'][string];
  const byPackage = new Map<string, number>();
  const byFile: BundleInput[] = [];
  for (const [file, input] of Object.entries(output.inputs)) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? `(project) ${file.split('/')[0]}`;
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + input.bytesInOutput);
    byFile.push({ name: file.replace(/^.*node_modules\//, ''), kib: input.bytesInOutput / 1024 });
  }
  return {
    bytes: output.bytes,
    byPackage: [...byPackage]
      .map(([name, bytes]) => ({ name, kib: bytes / 1024 }))
      .sort((a, b) => b.kib - a.kib),
    byFile: byFile.sort((a, b) => b.kib - a.kib),
  };
}

export default async function runColdStartBench(log: Log, args: readonly string[] = []): Promise<PartResult> {
  const runs = countOption(args, '--runs', 10);
  const command = reproduceCommand('coldstart', { '--runs': runs });
  const loadAtStart = loadAverage();
  log(`reproduce: ${command}`);
  log(`load average at start: ${loadAtStart.join(' ')}`);
  const local = await startLocalResources('coldstart');
  const details: Record<string, unknown> = { command, runs };
  const lines: ResultLine[] = [];
  let deployed: DeployedFunctions | undefined;
  try {
    log('cdk synth for this CPU, each asset copied to an empty folder (not timed)...');
    const synthStarted = performance.now();
    deployed = deployFunctions(local.resources);
    log(`  synth done in ${fixed((performance.now() - synthStarted) / 1000, 1)} s`);
    const figures: Record<string, unknown> = {};
    for (const name of FUNCTION_NAMES) {
      const fn = deployed.functions.get(name);
      if (!fn) throw new Error(`no ${name} function in the stack`);
      // One start not counted: the first reads the asset from disk into the page cache.
      await invokeFresh(deployed, name, eventFor(name));
      const starts: Invocation[] = [];
      for (let i = 0; i < runs; i++) starts.push(await invokeFresh(deployed, name, eventFor(name)));
      const node = starts[0]?.node ?? '?';
      if (!node.startsWith('v24.')) throw new Error(`${name} started on Node ${node}, not 24`);
      const spawnToReady = distribution(starts.map((s) => s.spawnToReadyMs));
      const inProcess = distribution(starts.map((s) => s.readyMs));
      const imports = distribution(starts.map((s) => s.importMs));
      const firstInvoke = distribution(starts.map((s) => s.invokeMs));
      const bundleKiB = fn.bundleBytes / 1024;
      const assetMiB = fn.assetBytes / 2 ** 20;
      log(
        `  ${name}: bundle ${fixed(bundleKiB)} KiB (asset ${fixed(assetMiB, 1)} MiB), NODE_OPTIONS ` +
          `'${fn.environment.NODE_OPTIONS ?? ''}', ${runs} fresh processes on ${node}: ` +
          `spawn to ready p50 ${fixed(spawnToReady.p50)} ms (min ${fixed(spawnToReady.min)}, max ${fixed(spawnToReady.max)}); ` +
          `in process ${fixed(inProcess.p50)} ms, of which the handler's import ${fixed(imports.p50)} ms; ` +
          `first invocation ${fixed(firstInvoke.p50)} ms`,
      );
      figures[name] = {
        bundleBytes: fn.bundleBytes,
        assetBytes: fn.assetBytes,
        memoryMb: fn.memoryMb,
        nodeOptions: fn.environment.NODE_OPTIONS ?? '',
        spawnToReadyMs: starts.map((s) => Math.round(s.spawnToReadyMs)),
        inProcessReadyMs: starts.map((s) => Math.round(s.readyMs)),
        importMs: starts.map((s) => Math.round(s.importMs)),
        firstInvokeMs: starts.map((s) => Math.round(s.invokeMs)),
      };
      lines.push(
        {
          name: `${name}: fresh Node 24 process to handler ready`,
          unit: 'ms',
          dist: spawnToReady,
          ...(name === 'api'
            ? { target: `p50 < ${TARGET_API_MS}`, pass: spawnToReady.p50 < TARGET_API_MS }
            : {}),
        },
        { name: `  ${name}: of which the handler module's import`, unit: 'ms', dist: imports },
        { name: `  ${name}: first invocation`, unit: 'ms', dist: firstInvoke },
        { name: `  ${name}: bundle (index.mjs)`, unit: 'KiB', value: Math.round(bundleKiB) },
        { name: `  ${name}: asset, all files`, unit: 'MiB', value: Number(assetMiB.toFixed(1)) },
      );
    }
    details.functions = figures;

    const api = deployed.functions.get('api');
    const bundle = await apiBundleInputs();
    const shipped = api ? (await readFile(path.join(api.dir, 'index.mjs'))).length : Number.NaN;
    log('');
    log(
      `API bundle, esbuild metafile (same options as the stack): ${fixed(bundle.bytes / 1024)} KiB ` +
        `(the synthesized one: ${fixed(shipped / 1024)} KiB). Biggest inputs by package:`,
    );
    for (const input of bundle.byPackage.slice(0, 12))
      log(`  ${fixed(input.kib).padStart(6)} KiB  ${input.name}`);
    log('biggest files:');
    for (const input of bundle.byFile.slice(0, 10))
      log(`  ${fixed(input.kib).padStart(6)} KiB  ${input.name}`);
    details.apiBundle = {
      bytes: bundle.bytes,
      synthesizedBytes: shipped,
      byPackage: bundle.byPackage.slice(0, 30),
      byFile: bundle.byFile.slice(0, 30),
    };
  } finally {
    deployed?.close();
    await local.stop();
  }
  closePart(log, details, loadAtStart, command);
  return { lines, details };
}

const runDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (runDirectly) {
  const result = await runColdStartBench((line) => console.log(line), process.argv.slice(2));
  for (const line of summaryTable(result.lines.map((line) => ({ part: 'coldstart', line }))))
    console.log(line);
}
