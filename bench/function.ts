/**
 * The optimizer function against plain sharp, with S3, DynamoDB and SQS in a process of their own:
 * what the deployed function spends on an image beyond its encoder. On Lambda the storage services
 * run on other machines; on one machine they share the cores, so the local stack's CPU mixes their
 * work with the function's (see the pipeline part). Here the function (its deployed handler,
 * `functions/optimizer/handler.ts`, with its SDK clients, sharp and the placeholder) runs in this
 * process, the services in a child, and each process's CPU is read apart.
 *
 * A round: a batch of the 21 corpus JPEGs is created by the API's own use case, every photo is PUT to
 * its presigned URL, and S3's notification of each becomes the SQS event the function is invoked
 * with, one image per invocation (the deployed batch size), `--concurrency` invocations at once.
 * Timed from the first invocation to the last answer; every image must end `ready`. The floor, in
 * the same round: plain sharp making the same variants of the same photos, as many at once, with
 * the function's libvips settings. Round 0 warms both up and is not counted.
 *
 * `--latency-ms N` holds every S3 and DynamoDB request N ms on its way (a proxy in the services'
 * process): the round trips a Lambda has to the real services, which the function's own order of
 * work decides how often it waits for. `--pin` runs this process (the function and the floor) on
 * CPU 0 and the services on the other CPUs (`taskset`), so that the services' work no longer takes
 * the function's CPU, as on AWS, where they run on other machines.
 *
 * `--cpu-prof` profiles this process's main thread and prints where the function's CPU went in the
 * counted rounds.
 *
 *   npm run bench -- function [--rounds 3] [--concurrency 2] [--latency-ms 0] [--pin] [--cpu-prof]
 */
import { execFileSync, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import type { S3Event, SQSEvent, SQSRecord } from 'aws-lambda';
import sharp from 'sharp';
import { decodeEventKey } from '../functions/shared/notify/s3-events.ts';
import { lambdaContext } from '../local/glue/lambda-context.ts';
import { PrometheusMetrics } from '../local/glue/prometheus.ts';
import { type LocalFile, putUpload } from '../test/support/api-client.ts';
import { removeDir } from '../test/support/stack-process.ts';
import { corpusPhotos, sharpFloor } from './pipeline.ts';
import { monotonicUs, type ProfileWindow, summarizeProfiles } from './support/profile.ts';
import {
  closePart,
  countOption,
  type Log,
  loadAverage,
  type PartResult,
  reproduceCommand,
} from './support/report.ts';
import { SERVICE_NAMES, type ServiceEndpoints } from './support/services.ts';
import { cpuMsOf, cpuProfileDir, diffCpu, processCpuMs, threadCpuMs } from './support/stack.ts';
import { distribution } from './support/stats.ts';

const UPLOAD_PREFIX = 'uploads/';

/** The services child: its endpoints, the S3 notifications it sends, and its CPU. */
async function startServices(dataDir: string, latencyMs: number) {
  const child = fork(path.join(import.meta.dirname, 'support', 'services.ts'), [dataDir, String(latencyMs)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const created: S3Event['Records'] = [];
  const ready = new Promise<ServiceEndpoints>((resolve, reject) => {
    child.on('message', (message: { ready?: ServiceEndpoints; created?: S3Event }) => {
      if (message.ready) resolve(message.ready);
      if (message.created) created.push(...message.created.Records);
    });
    child.once('exit', (code) =>
      reject(new Error(`the services process exited (${code}) before it was ready`)),
    );
  });
  const endpoints = await ready;
  return {
    endpoints,
    pid: child.pid ?? 0,
    /** The notifications of `count` objects under `prefix`, once all have arrived (S3 sends them after each PUT). */
    async notified(prefix: string, count: number): Promise<S3Event['Records']> {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const mine = created.filter((record) => decodeEventKey(record.s3.object.key)?.startsWith(prefix));
        if (mine.length >= count) return mine;
        if (Date.now() > deadline)
          throw new Error(`${mine.length} of ${count} uploads were notified within 30 s`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    cpuMs: () => processCpuMs(child.pid ?? 0),
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await exited;
    },
  };
}

/** Puts every thread of a process (and so every thread it starts later) on these CPUs (`taskset`). */
const pinTo = (pid: number, cpus: string) =>
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { stdio: 'ignore' });

/** The SQS message Lambda's poller hands the function for one S3 notification (first receive). */
function sqsRecord(record: S3Event['Records'][number], queueArn: string): SQSRecord {
  const now = String(Date.now());
  return {
    messageId: randomUUID(),
    receiptHandle: randomUUID(),
    body: JSON.stringify({ Records: [record] }),
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: now,
      SenderId: 'bench',
      ApproximateFirstReceiveTimestamp: now,
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: 'us-east-1',
  };
}

export default async function runFunctionBench(log: Log, args: readonly string[] = []): Promise<PartResult> {
  const rounds = countOption(args, '--rounds', 3);
  const concurrency = countOption(args, '--concurrency', 2);
  const latencyMs = countOption(args, '--latency-ms', 0);
  const pin = args.includes('--pin');
  const profileDir = cpuProfileDir(args, 'function');
  const cpus = availableParallelism();
  if (pin && cpus < 2)
    throw new Error('--pin needs 2 CPUs or more: one for the function, the rest for the services');
  const command = reproduceCommand('function', {
    '--rounds': rounds,
    '--concurrency': concurrency,
    '--latency-ms': latencyMs || undefined,
    '--pin': pin,
    '--cpu-prof': Boolean(profileDir),
  });
  const loadAtStart = loadAverage();
  log(`reproduce: ${command}`);
  log(`load average at start: ${loadAtStart.join(' ')}`);
  const files = await corpusPhotos();
  log(
    `function: ${files.length} corpus JPEGs, ${rounds} rounds, ${concurrency} invocations at once` +
      (latencyMs > 0 ? `, every S3 and DynamoDB request held ${latencyMs} ms` : '') +
      (pin ? `; the function and the floor on CPU 0, the services on CPUs 1-${cpus - 1}` : ''),
  );

  const root = await mkdtemp(path.join(tmpdir(), 'photo-intake-function-'));
  const services = await startServices(root, latencyMs);
  if (pin) {
    pinTo(process.pid, '0');
    pinTo(services.pid, `1-${cpus - 1}`);
  }
  // The handler reads its configuration once, on import, as on Lambda; this process's environment
  // and sharp's settings are put back afterwards, for the parts that run after this one.
  const savedEnv = { ...process.env };
  const savedSharp = { concurrency: sharp.concurrency() };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    TABLE_NAME: SERVICE_NAMES.table,
    UPLOAD_BUCKET: SERVICE_NAMES.uploadBucket,
    VARIANTS_BUCKET: SERVICE_NAMES.variantsBucket,
    UPLOAD_PREFIX,
    S3_ENDPOINT: services.endpoints.s3Endpoint,
    DYNAMODB_ENDPOINT: services.endpoints.dynamodbEndpoint,
    SQS_ENDPOINT: services.endpoints.sqsEndpoint,
    QUEUE_URL: services.endpoints.queueUrl,
    REQUESTS_PER_MINUTE: '1000000',
    MAX_OPEN_UPLOADS: '1000000',
    // As the local stack runs the functions: warnings only, metrics into prom-client (on Lambda an
    // EMF line a flush).
    POWERTOOLS_LOG_LEVEL: 'WARN',
  });
  const floorWall: number[] = [];
  const floorCpu: number[] = [];
  const fnWall: number[] = [];
  const fnCpu: number[] = [];
  const fnMainThread: number[] = [];
  const servicesCpu: number[] = [];
  /** The counted rounds' function phases, where the profile (`--cpu-prof`) is summarized. */
  const windows: ProfileWindow[] = [];
  // `--cpu-prof`: V8's profiler on this process's main thread, the function's JS (the encodes run on
  // other threads).
  const profiler = profileDir ? new Session() : undefined;
  profiler?.connect();
  await profiler?.post('Profiler.enable');
  await profiler?.post('Profiler.start');
  try {
    const observability = await import('../functions/shared/observability.ts');
    observability.recordMetricsWith(new PrometheusMetrics());
    const { handler } = await import('../functions/optimizer/handler.ts');
    const { getConfig } = await import('../functions/shared/config.ts');
    const { createAdapters } = await import('../functions/shared/adapters.ts');
    const { apiDepsFrom } = await import('../functions/api/router.ts');
    const { createBatch } = await import('../functions/api/presign/create-batch.ts');
    const config = getConfig();
    const adapters = createAdapters(config);
    const { uploads } = apiDepsFrom(config, adapters, {
      logger: { error: (message, ...extra) => log(`api: ${message} ${extra.join(' ')}`) },
      metrics: { filesRequested() {} },
    });
    const queueArn = `arn:aws:sqs:us-east-1:000000000000:${SERVICE_NAMES.queue}`;

    for (let r = 0; r <= rounds; r++) {
      const floor = await sharpFloor(files, concurrency);
      const batch = await createBatch(uploads, `function-${r}`, {
        files: files.map(({ name, type, size }) => ({ name, type, size })),
      });
      await Promise.all(
        batch.items.map(async (item, i) => {
          const put = await putUpload(item, (files[i] as LocalFile).bytes);
          if (!put.ok) throw new Error(`PUT of ${(files[i] as LocalFile).name}: ${put.status}`);
        }),
      );
      const notifications = await services.notified(`${UPLOAD_PREFIX}${batch.batchId}/`, files.length);

      const cpuBefore = process.cpuUsage();
      const threadsBefore = await threadCpuMs(process.pid);
      const servicesBefore = await services.cpuMs();
      const started = performance.now();
      const startUs = monotonicUs();
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, worker) => {
          while (next < notifications.length) {
            const event: SQSEvent = {
              Records: [sqsRecord(notifications[next++] as S3Event['Records'][number], queueArn)],
            };
            const response = await handler(event, lambdaContext(`optimizer-${worker}`, 120_000));
            if (response.batchItemFailures.length > 0)
              throw new Error('the function reported a failed message');
          }
        }),
      );
      const wall = performance.now() - started;
      const used = process.cpuUsage(cpuBefore);
      const threads = diffCpu(await threadCpuMs(process.pid), threadsBefore);
      const servicesUsed = (await services.cpuMs()) - servicesBefore;

      const record = await adapters.records.getBatch(batch.batchId);
      if (record?.counts.ready !== files.length) {
        throw new Error(`not all ready: ${JSON.stringify(record?.counts)}`);
      }
      if (r === 0) continue;
      windows.push({ name: `round ${r}, the function`, startUs, endUs: startUs + wall * 1000 });
      floorWall.push(floor.wallMs);
      floorCpu.push(floor.cpuMs);
      fnWall.push(wall);
      fnCpu.push(cpuMsOf(used));
      fnMainThread.push(threads.MainThread ?? 0);
      servicesCpu.push(servicesUsed);
      log(
        `  round ${r}: plain sharp ${floor.wallMs.toFixed(0)} ms (CPU ${floor.cpuMs.toFixed(0)} ms); ` +
          `function ${wall.toFixed(0)} ms (CPU ${fnCpu.at(-1)?.toFixed(0)} ms, main thread ${fnMainThread.at(-1)} ms); ` +
          `services CPU ${servicesUsed} ms`,
      );
    }
  } finally {
    if (profiler && profileDir) {
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      await mkdir(profileDir, { recursive: true });
      await writeFile(path.join(profileDir, 'function.cpuprofile'), JSON.stringify(profile));
    }
    for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
    Object.assign(process.env, savedEnv);
    sharp.concurrency(savedSharp.concurrency);
    sharp.cache(true);
    if (pin) pinTo(process.pid, `0-${cpus - 1}`);
    await services.stop();
    await removeDir(root);
  }

  const perImage = (values: number[]) => distribution(values.map((ms) => ms / files.length));
  const cpuRatio = distribution(fnCpu).p50 / distribution(floorCpu).p50;
  const wallRatio = distribution(fnWall).p50 / distribution(floorWall).p50;
  const details: Record<string, unknown> = {
    command,
    concurrency,
    latencyMs,
    pin,
    photos: files.map((f) => f.name),
    floorWall,
    floorCpu,
    fnWall,
    fnCpu,
    fnMainThread,
    servicesCpu,
  };
  if (profileDir) {
    log(`CPU profile of the function's main thread (${profileDir}):`);
    for (const line of (await summarizeProfiles(profileDir, windows)).lines) log(line);
  }
  log(`  function CPU / plain sharp CPU (p50): ${cpuRatio.toFixed(2)}x; wall: ${wallRatio.toFixed(2)}x`);
  closePart(log, details, loadAtStart, command);
  return {
    lines: [
      { name: 'plain sharp CPU per image', unit: 'ms', dist: perImage(floorCpu) },
      { name: 'optimizer function CPU per image (its process)', unit: 'ms', dist: perImage(fnCpu) },
      { name: '  of which its main JS thread', unit: 'ms', dist: perImage(fnMainThread) },
      { name: 'function CPU / plain sharp CPU (p50)', unit: 'x', value: Number(cpuRatio.toFixed(2)) },
      { name: 'function wall / plain sharp wall (p50)', unit: 'x', value: Number(wallRatio.toFixed(2)) },
      {
        name: 'S3, DynamoDB, SQS servers CPU per image (other process)',
        unit: 'ms',
        dist: perImage(servicesCpu),
      },
    ],
    details,
  };
}
