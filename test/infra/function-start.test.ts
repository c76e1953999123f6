import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import { type Emulators, startEmulators } from '../../local/emulators/index.ts';
import { notificationBridge } from '../../local/glue/notifications.ts';
import { corpusFile, projectRoot } from '../support/corpus.ts';
import { LOCAL_CREDENTIALS } from '../support/local-clients.ts';
import { stageStack } from './cdk-app.ts';

/**
 * Every function starts as deployed: each Lambda asset `cdk synth` wrote is copied into an empty
 * folder (nothing but what the asset ships: no project node_modules above it) and imported by a
 * fresh Node.js 24 process, as Lambda's runtime would, then invoked once against the local
 * emulators. An import error, a missing package or a configuration the function refuses fails here.
 *
 * Synthesized for this machine's CPU (`lambdaArchitecture`), so that sharp's native package in the
 * optimizer's asset is one this machine can load; the bundles themselves do not depend on the CPU.
 */

const NODE = join(projectRoot, 'node_modules', '.bin', 'node');
const PHOTO = corpusFile('valid/sharp--Landscape_1.jpg');
const REGION = 'us-east-1';
const NAMES = {
  uploadBucket: 'start-test-uploads',
  variantsBucket: 'start-test-variants',
  table: 'start-test',
  queue: 'start-test-work',
  dlq: 'start-test-work-dlq',
};

/** Imports the handler from the asset, invokes it with one event, and reports the timings. */
const RUNNER = `
const started = performance.now();
const [handlerUrl, eventFile, resultFile, timeoutMs] = process.argv.slice(2);
const { readFileSync, writeFileSync } = await import('node:fs');
const report = (value) => writeFileSync(resultFile, JSON.stringify(value));
let mod;
try {
  mod = await import(handlerUrl);
} catch (error) {
  report({ phase: 'import', error: String(error && error.stack || error) });
  process.exit(1);
}
const ready = performance.now();
if (typeof mod.handler !== 'function') {
  report({ phase: 'import', error: 'the module exports no handler function' });
  process.exit(1);
}
const deadline = Date.now() + Number(timeoutMs);
const context = {
  callbackWaitsForEmptyEventLoop: false,
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:' + process.env.AWS_LAMBDA_FUNCTION_NAME,
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  awsRequestId: crypto.randomUUID(),
  logGroupName: '/aws/lambda/start-test',
  logStreamName: 'start-test',
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};
try {
  const result = await mod.handler(JSON.parse(readFileSync(eventFile, 'utf8')), context);
  report({ phase: 'done', node: process.version, readyMs: ready, importMs: ready - started, invokeMs: performance.now() - ready, result });
  process.exit(0);
} catch (error) {
  report({ phase: 'invoke', error: String(error && error.stack || error) });
  process.exit(1);
}
`;

interface Invocation {
  node: string;
  /** From the process's start to the handler being ready (Node bootstrap + import + init). */
  readyMs: number;
  importMs: number;
  invokeMs: number;
  result: unknown;
}

interface DeployedFunction {
  name: string;
  construct: IConstruct;
  /** The asset copied to its own empty folder. */
  dir: string;
  environment: Record<string, string>;
  timeoutMs: number;
  memoryMb: number;
  bundleBytes: number;
  assetBytes: number;
  coldStartsMs: number[];
}

let outdir: string;
let scratch: string;
let stack: ImagePipelineStack;
let emulators: Emulators;
let sqs: SQSClient;
let bridge: ReturnType<typeof notificationBridge>;
const deployed = new Map<string, DeployedFunction>();

const sizeOf = (path: string): number =>
  statSync(path).isDirectory()
    ? readdirSync(path).reduce((total, entry) => total + sizeOf(join(path, entry)), 0)
    : statSync(path).size;

beforeAll(async () => {
  const architecture = { arm64: 'arm64', x64: 'x86_64' }[process.arch as string];
  if (!architecture)
    throw new Error(`Lambda has no ${process.arch} CPU; this test cannot start its assets here.`);
  outdir = mkdtempSync(join(tmpdir(), 'image-pipeline-start-'));
  scratch = mkdtempSync(join(tmpdir(), 'image-pipeline-start-run-'));
  ({ stack } = stageStack(outdir, { lambdaArchitecture: architecture }));
  const assembly = stack.node.root as unknown as { synth(): { directory: string } };
  const assemblyDir = assembly.synth().directory;
  const template = Template.fromStack(stack).toJSON() as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };

  emulators = await startEmulators({
    dataDir: join(scratch, 'data'),
    buckets: { upload: NAMES.uploadBucket, variants: NAMES.variantsBucket },
    tableName: NAMES.table,
    queueName: NAMES.queue,
    dlqName: NAMES.dlq,
    visibilityTimeoutSeconds: 60,
    maxReceiveCount: 5,
  });
  sqs = new SQSClient({
    region: REGION,
    endpoint: emulators.sqsEndpoint,
    credentials: LOCAL_CREDENTIALS,
  });
  bridge = notificationBridge({
    sqs,
    queueUrl: emulators.queueUrl,
    bucket: NAMES.uploadBucket,
    prefix: 'uploads/',
    onError: (error) => {
      throw error;
    },
  });
  emulators.onObjectCreated((event) => bridge.onObjectCreated(event));

  // What each of the stack's resources is called on the emulators.
  const logicalId = (construct: IConstruct) => stack.getLogicalId(construct.node.defaultChild as CfnElement);
  const local = new Map<string, string>([
    [logicalId(stack.storage.table), NAMES.table],
    [logicalId(stack.storage.uploadBucket), NAMES.uploadBucket],
    [logicalId(stack.storage.variantsBucket), NAMES.variantsBucket],
    [logicalId(stack.optimizer.queue), emulators.queueUrl],
    [logicalId(stack.optimizer.deadLetterQueue), emulators.dlqUrl],
  ]);
  const resolve = (fn: string, name: string, value: unknown): string => {
    if (typeof value === 'string') return value;
    const ref = (value as { Ref?: string }).Ref;
    const found = ref === undefined ? undefined : local.get(ref);
    if (found === undefined) throw new Error(`${fn}: no local value for ${name} = ${JSON.stringify(value)}`);
    return found;
  };

  for (const [name, fn] of [
    ['api', stack.api.function],
    ['optimizer', stack.optimizer.function],
    ['reconciler', stack.reconciler.function],
  ] as const) {
    const properties = template.Resources[logicalId(fn.fn)]?.Properties as {
      Handler: string;
      Timeout: number;
      MemorySize: number;
      Code: { S3Key: string };
      Environment: { Variables: Record<string, unknown> };
    };
    expect(properties.Handler).toBe('index.handler');
    const assetDir = join(assemblyDir, `asset.${properties.Code.S3Key.replace(/\.zip$/, '')}`);
    expect(existsSync(join(assetDir, 'index.mjs'))).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), `lambda-${name}-`));
    cpSync(assetDir, dir, { recursive: true });
    // An empty folder: nothing on the way up may offer packages the asset does not ship.
    for (let up = dirname(dir); up !== dirname(up); up = dirname(up)) {
      expect(existsSync(join(up, 'node_modules')), `${up}/node_modules`).toBe(false);
    }
    const variables = Object.fromEntries(
      Object.entries(properties.Environment.Variables).map(([key, value]) => [
        key,
        resolve(name, key, value),
      ]),
    );
    deployed.set(name, {
      name,
      construct: fn.fn,
      dir,
      timeoutMs: properties.Timeout * 1000,
      memoryMb: properties.MemorySize,
      bundleBytes: statSync(join(dir, 'index.mjs')).size,
      assetBytes: sizeOf(dir),
      coldStartsMs: [],
      environment: {
        // What Lambda's runtime sets, then the function's own variables as the template has them.
        PATH: '/usr/local/bin:/usr/bin:/bin',
        TZ: ':UTC',
        LANG: 'en_US.UTF-8',
        LAMBDA_TASK_ROOT: dir,
        AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
        AWS_LAMBDA_FUNCTION_NAME: `start-test-${name}`,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(properties.MemorySize),
        AWS_REGION: REGION,
        AWS_DEFAULT_REGION: REGION,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        ...variables,
        // Where the emulators listen (unset on AWS).
        S3_ENDPOINT: emulators.s3Endpoint,
        DYNAMODB_ENDPOINT: emulators.dynamodbEndpoint,
        SQS_ENDPOINT: emulators.sqsEndpoint,
        POWERTOOLS_LOG_LEVEL: 'ERROR',
      },
    });
  }
});

afterAll(async () => {
  const figures = [...deployed.values()].map((fn) => ({
    function: fn.name,
    bundleKiB: Math.round(fn.bundleBytes / 1024),
    assetMiB: Number((fn.assetBytes / 1024 ** 2).toFixed(1)),
    coldStartMs: fn.coldStartsMs.map(Math.round),
  }));
  // The figures issue 12 asks for (bundle sizes, fresh process to handler ready).
  console.log(`function start figures: ${JSON.stringify(figures)}`);
  await bridge?.drain();
  sqs?.destroy();
  await emulators?.stop();
  for (const fn of deployed.values()) rmSync(fn.dir, { recursive: true, force: true });
  for (const dir of [outdir, scratch]) if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts a fresh Node.js process in the function's folder, imports its handler and invokes it once. */
async function invoke(name: string, event: unknown, without: readonly string[] = []): Promise<Invocation> {
  const fn = deployed.get(name);
  if (!fn) throw new Error(`no function ${name}`);
  const id = randomUUID();
  const runner = join(scratch, 'runner.mjs');
  if (!existsSync(runner)) writeFileSync(runner, RUNNER);
  const eventFile = join(scratch, `${id}.event.json`);
  const resultFile = join(scratch, `${id}.result.json`);
  writeFileSync(eventFile, JSON.stringify(event));
  const handlerUrl = pathToFileURL(join(fn.dir, 'index.mjs')).href;
  const child = spawn(NODE, [runner, handlerUrl, eventFile, resultFile, String(fn.timeoutMs)], {
    cwd: fn.dir,
    env: Object.fromEntries(Object.entries(fn.environment).filter(([key]) => !without.includes(key))),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const report = existsSync(resultFile)
    ? (JSON.parse(readFileSync(resultFile, 'utf8')) as Partial<Invocation> & {
        phase: string;
        error?: string;
      })
    : { phase: 'exit', error: `exited ${code} without a result` };
  if (report.phase !== 'done') {
    throw new Error(
      `${name} failed to ${report.phase}: ${report.error}\n--- output ---\n${output.slice(-4000)}`,
    );
  }
  const done = report as Invocation;
  expect(done.node).toMatch(/^v24\./);
  fn.coldStartsMs.push(done.readyMs);
  return done;
}

type ApiResult = { statusCode: number; body?: string; headers?: Record<string, string> };

/** An HTTP API (payload 2.0) event as API Gateway sends it after the JWT authorizer let it through. */
function apiEvent(
  method: string,
  path: string,
  route: string,
  options: { body?: unknown; owner?: string } = {},
) {
  const now = new Date();
  const pathParameters = Object.fromEntries(
    [...route.matchAll(/\{(\w+)\}/g)].map((match, i) => [match[1], path.split('/')[3 + i] ?? '']),
  );
  return {
    version: '2.0',
    routeKey: `${method} ${route}`,
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', ...(options.owner && { authorization: 'Bearer jwt' }) },
    ...(Object.keys(pathParameters).length > 0 && { pathParameters }),
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'start-test',
      domainName: 'start-test.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'start-test',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'start-test' },
      requestId: randomUUID(),
      routeKey: `${method} ${route}`,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
      ...(options.owner && {
        authorizer: {
          principalId: '',
          integrationLatency: 0,
          jwt: { claims: { sub: options.owner }, scopes: [] },
        },
      }),
    },
  };
}

describe('every Lambda asset starts as deployed (Node.js 24, an empty folder, the local emulators)', () => {
  it('ships each function as one ESM bundle with the AWS SDK inside, and only sharp beside the optimizer', () => {
    for (const fn of deployed.values()) {
      const bundle = readFileSync(join(fn.dir, 'index.mjs'), 'utf8');
      // No import of the SDK is left for the runtime to satisfy (the invocations below prove the rest:
      // they run from a folder where no SDK package exists).
      const sdkImports = bundle.match(/(?:\bfrom\s*|\bimport\s*\(\s*)["']@(?:aws-sdk|smithy)\/[^"']+["']/g);
      expect(sdkImports, fn.name).toBeNull();
      const shipped = existsSync(join(fn.dir, 'node_modules'))
        ? readdirSync(join(fn.dir, 'node_modules'))
        : [];
      if (fn.name === 'optimizer')
        expect(shipped).toEqual(expect.arrayContaining(['sharp', 'heic-decode', '@img']));
      else expect(shipped).toEqual([]);
    }
  });

  it('api: answers a health request', async () => {
    const { result } = await invoke('api', apiEvent('GET', '/v1/health', '/v1/health'));
    expect(result).toMatchObject({ statusCode: 200 });
    expect(JSON.parse((result as ApiResult).body ?? '')).toEqual({ status: 'ok' });
  });

  it('api: signs upload URLs as S3 accepts them when no S3 endpoint is set (as deployed)', async () => {
    // S3_ENDPOINT unset: the client and signer are those of the deployment (signing needs no network).
    const sha256 = 'a'.repeat(64);
    const created = (
      await invoke(
        'api',
        apiEvent('POST', '/v1/uploads', '/v1/uploads', {
          owner: 'start-test-signing',
          body: {
            files: [
              { name: 'with-checksum.jpg', type: 'image/jpeg', size: 1234, sha256 },
              { name: 'without.jpg', type: 'image/jpeg', size: 1234 },
            ],
          },
        }),
        ['S3_ENDPOINT'],
      )
    ).result as ApiResult;
    expect(created.statusCode).toBe(201);
    const items = (
      JSON.parse(created.body ?? '') as {
        items: { upload: { url: string; headers: Record<string, string> } }[];
      }
    ).items;
    for (const [i, item] of items.entries()) {
      const url = new URL(item.upload.url);
      expect(url.hostname).toMatch(/\.amazonaws\.com$/);
      const query = [...url.searchParams.keys()].map((k) => k.toLowerCase());
      // The SDK's default would sign the CRC32 of an empty body here, and S3 would refuse every upload.
      expect(query).not.toContain('x-amz-checksum-crc32');
      expect(query).not.toContain('x-amz-sdk-checksum-algorithm');
      const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
      if (i === 0) {
        expect(signed).toContain('x-amz-checksum-sha256');
        expect(item.upload.headers['x-amz-checksum-sha256']).toBe(
          Buffer.from(sha256, 'hex').toString('base64'),
        );
      } else {
        expect(signed.filter((h) => h.startsWith('x-amz-checksum'))).toEqual([]);
        expect(Object.keys(item.upload.headers).filter((h) => h.startsWith('x-amz-checksum'))).toEqual([]);
      }
    }
  });

  it('optimizer: turns one real SQS event for a corpus photo into variants (the API creates and reports it)', async () => {
    const bytes = readFileSync(PHOTO);
    const created = (
      await invoke(
        'api',
        apiEvent('POST', '/v1/uploads', '/v1/uploads', {
          owner: 'start-test',
          body: {
            files: [
              {
                name: 'landscape.jpg',
                type: 'image/jpeg',
                size: bytes.length,
                sha256: createHash('sha256').update(bytes).digest('hex'),
              },
            ],
          },
        }),
      )
    ).result as ApiResult;
    expect(created.statusCode).toBe(201);
    const batch = JSON.parse(created.body ?? '') as {
      items: { imageId: string; upload: { method: string; url: string; headers: Record<string, string> } }[];
    };
    const item = batch.items[0];
    if (!item) throw new Error('no item');
    const put = await fetch(item.upload.url, {
      method: item.upload.method,
      headers: item.upload.headers,
      body: bytes,
    });
    expect(put.status).toBe(200);
    await bridge.drain();

    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: emulators.queueUrl,
        MaxNumberOfMessages: 1,
        WaitTimeSeconds: 5,
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const message = Messages[0];
    if (!message) throw new Error('the upload was not announced on the work queue');
    const attributes = message.Attributes ?? {};
    const event = {
      Records: [
        {
          messageId: message.MessageId,
          receiptHandle: message.ReceiptHandle,
          body: message.Body,
          attributes: {
            ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
            SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
            SenderId: attributes.SenderId ?? 'start-test',
            ApproximateFirstReceiveTimestamp:
              attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
          },
          messageAttributes: {},
          md5OfBody: message.MD5OfBody,
          eventSource: 'aws:sqs',
          eventSourceARN: emulators.queueArn,
          awsRegion: REGION,
        },
      ],
    };
    const processed = await invoke('optimizer', event);
    // Lambda deletes the messages of a batch the function reports no failure for.
    expect(processed.result).toEqual({ batchItemFailures: [] });
    await sqs.send(
      new DeleteMessageCommand({ QueueUrl: emulators.queueUrl, ReceiptHandle: message.ReceiptHandle }),
    );

    const image = (
      await invoke(
        'api',
        apiEvent('GET', `/v1/images/${item.imageId}`, '/v1/images/{imageId}', { owner: 'start-test' }),
      )
    ).result as ApiResult;
    expect(image.statusCode).toBe(200);
    const body = JSON.parse(image.body ?? '') as {
      status: string;
      variants: { url: string; format: string }[];
    };
    expect(body.status).toBe('ready');
    expect(body.variants.length).toBeGreaterThan(0);
    const variant = await fetch(body.variants[0]?.url ?? '');
    expect(variant.status).toBe(200);
    expect(variant.headers.get('content-type')).toBe(`image/${body.variants[0]?.format}`);
  });

  it('reconciler: runs once for a scheduled event', async () => {
    const { result } = await invoke('reconciler', {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: '000000000000',
      time: new Date().toISOString(),
      region: REGION,
      resources: ['arn:aws:events:us-east-1:000000000000:rule/start-test'],
      detail: {},
    });
    expect(result).toMatchObject({ queuedMissedEvents: 0, requeuedStuck: 0 });
  });
});
