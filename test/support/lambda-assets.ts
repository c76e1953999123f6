/**
 * The Lambda functions as deployed, started on this machine: `cdk synth` of the stack for this
 * machine's CPU (so that sharp's native package in the optimizer's asset is one this machine can
 * load; the bundles themselves do not depend on the CPU), each function's asset copied into an empty
 * folder (nothing but what the asset ships: no project node_modules above it), and a fresh Node.js
 * 24 process per invocation that imports the handler as Lambda's runtime would and invokes it once.
 * `startLocalResources` starts the local emulators with every resource the five functions use.
 *
 * Used by test/infra/function-start.test.ts (every function starts and works) and by
 * bench/coldstart.ts (how long a start takes).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
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
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import type { PipelineFunction } from '../../lib/constructs/pipeline-function.ts';
import type { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import { type Emulators, startEmulators } from '../../local/emulators/index.ts';
import { stageStack } from '../infra/cdk-app.ts';
import { projectRoot } from './corpus.ts';
import { LOCAL_CREDENTIALS } from './local-clients.ts';

/** Node.js 24, the Lambda runtime's version (the `node` devDependency). */
export const LAMBDA_NODE = join(projectRoot, 'node_modules', '.bin', 'node');
export const REGION = 'us-east-1';

export const FUNCTION_NAMES = ['api', 'optimizer', 'reconciler', 'relay', 'notifier'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** What the stack's resources are called on the local servers, and where those listen. */
export interface LocalResources {
  table: string;
  uploadBucket: string;
  variantsBucket: string;
  queueUrl: string;
  dlqUrl: string;
  /** The webhook queue: the relay sends to it, the notifier changes its messages' visibility. */
  webhookQueueUrl: string;
  /** The EventBridge bus the relay puts events on (no emulator: only named, unless a batch has events). */
  eventBusName: string;
  /**
   * The webhook signing secret: the Secrets Manager ARN the template gives the notifier, and the
   * value itself, which the notifier is given as WEBHOOK_SECRET (it prefers that; no emulator).
   */
  webhookSecret: { arn: string; value: string };
  endpoints: { s3: string; dynamodb: string; sqs: string };
}

/** Variables only the local stack sets, beyond the endpoints every function gets (unset on AWS). */
const LOCAL_ONLY: Partial<Record<FunctionName, (resources: LocalResources) => Record<string, string>>> = {
  // The signing secret itself, and webhooks allowed to the receivers on loopback.
  notifier: (resources) => ({
    WEBHOOK_SECRET: resources.webhookSecret.value,
    CALLBACK_ALLOW_PRIVATE: 'true',
  }),
};

export interface LocalStack {
  emulators: Emulators;
  resources: LocalResources;
  /** Stops the emulators and removes their data. */
  stop(): Promise<void>;
}

/**
 * Starts the local emulators (S3, DynamoDB, SQS) with the buckets, table and queues the five
 * functions use, each named after `prefix` (`<prefix>-uploads`, `<prefix>-work`, ...), their data in
 * a temporary folder.
 */
export async function startLocalResources(prefix: string): Promise<LocalStack> {
  const dataDir = mkdtempSync(join(tmpdir(), `${prefix}-data-`));
  const webhooks = `${prefix}-webhooks`;
  let emulators: Emulators;
  try {
    emulators = await startEmulators({
      dataDir,
      buckets: { upload: `${prefix}-uploads`, variants: `${prefix}-variants` },
      tableName: prefix,
      queueName: `${prefix}-work`,
      dlqName: `${prefix}-work-dlq`,
      visibilityTimeoutSeconds: 60,
      maxReceiveCount: 5,
      extraQueues: [
        { name: webhooks, dlqName: `${webhooks}-dlq`, visibilityTimeoutSeconds: 60, maxReceiveCount: 8 },
      ],
    });
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const stop = async () => {
    try {
      await emulators.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  };
  const webhookQueue = emulators.extraQueues[webhooks];
  if (!webhookQueue) {
    await stop();
    throw new Error(`the emulators created no ${webhooks} queue`);
  }
  return {
    emulators,
    resources: {
      table: prefix,
      uploadBucket: `${prefix}-uploads`,
      variantsBucket: `${prefix}-variants`,
      queueUrl: emulators.queueUrl,
      dlqUrl: emulators.dlqUrl,
      webhookQueueUrl: webhookQueue.queueUrl,
      eventBusName: `${prefix}-bus`,
      webhookSecret: {
        arn: `arn:aws:secretsmanager:${REGION}:000000000000:secret:${prefix}`,
        value: `whsec_${Buffer.alloc(24, 5).toString('base64')}`,
      },
      endpoints: {
        s3: emulators.s3Endpoint,
        dynamodb: emulators.dynamodbEndpoint,
        sqs: emulators.sqsEndpoint,
      },
    },
    stop,
  };
}

export interface DeployedFunction {
  name: FunctionName;
  construct: IConstruct;
  /** The asset copied to its own empty folder. */
  dir: string;
  /** What Lambda's runtime sets, then the function's own variables as the template has them. */
  environment: Record<string, string>;
  timeoutMs: number;
  memoryMb: number;
  /** index.mjs */
  bundleBytes: number;
  /** Everything in the asset (bundle, source map, shipped node_modules). */
  assetBytes: number;
}

export interface DeployedFunctions {
  stack: ImagePipelineStack;
  functions: Map<FunctionName, DeployedFunction>;
  /** Holds the runner script and each invocation's event and result files. */
  runDir: string;
  /** Removes the copies, the cloud assembly and the runner's files. */
  close(): void;
}

const READY_MARK = '__photo_intake_handler_ready__';

/** Imports the handler from the asset, says when it is ready, invokes it with one event, and reports the timings. */
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
process.stdout.write('\\n${READY_MARK}\\n');
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

export interface Invocation {
  node: string;
  /** From the process's start (its time origin) to the handler being ready (Node bootstrap + import + init). */
  readyMs: number;
  /** The handler module's import alone (the bundle's top level: configuration, clients). */
  importMs: number;
  /** The first invocation. */
  invokeMs: number;
  /** From `spawn` in this process to the child saying its handler is ready (adds exec and Node's own start). */
  spawnToReadyMs: number;
  result: unknown;
}

const sizeOf = (path: string): number =>
  statSync(path).isDirectory()
    ? readdirSync(path).reduce((total, entry) => total + sizeOf(join(path, entry)), 0)
    : statSync(path).size;

/**
 * Synthesizes the stack for this machine's CPU (esbuild, and npm for the optimizer's native
 * packages: about half a minute) and copies each function's asset into its own empty folder, with
 * the environment the template gives it, resolved to the local resources.
 */
export function deployFunctions(resources: LocalResources): DeployedFunctions {
  const architecture = { arm64: 'arm64', x64: 'x86_64' }[process.arch as string];
  if (!architecture) throw new Error(`Lambda has no ${process.arch} CPU; its assets cannot be started here.`);
  const outdir = mkdtempSync(join(tmpdir(), 'image-pipeline-start-'));
  const dirs: string[] = [outdir];
  const close = () => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { stack } = stageStack(outdir, { lambdaArchitecture: architecture });
    const assembly = stack.node.root as unknown as { synth(): { directory: string } };
    const assemblyDir = assembly.synth().directory;
    const template = Template.fromStack(stack).toJSON() as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };

    // What each of the stack's resources is called on the local servers.
    const logicalId = (construct: IConstruct) =>
      stack.getLogicalId(construct.node.defaultChild as CfnElement);
    const local = new Map<string, string>([
      [logicalId(stack.storage.table), resources.table],
      [logicalId(stack.storage.uploadBucket), resources.uploadBucket],
      [logicalId(stack.storage.variantsBucket), resources.variantsBucket],
      [logicalId(stack.optimizer.queue), resources.queueUrl],
      [logicalId(stack.optimizer.deadLetterQueue), resources.dlqUrl],
      [logicalId(stack.push.webhookQueue), resources.webhookQueueUrl],
      [logicalId(stack.push.bus), resources.eventBusName],
      [logicalId(stack.push.secret), resources.webhookSecret.arn],
    ]);
    const resolve = (fn: string, name: string, value: unknown): string => {
      if (typeof value === 'string') return value;
      const ref = (value as { Ref?: string }).Ref;
      const found = ref === undefined ? undefined : local.get(ref);
      if (found === undefined)
        throw new Error(`${fn}: no local value for ${name} = ${JSON.stringify(value)}`);
      return found;
    };

    const functions = new Map<FunctionName, DeployedFunction>();
    const constructs: Record<FunctionName, PipelineFunction> = {
      api: stack.api.function,
      optimizer: stack.optimizer.function,
      reconciler: stack.reconciler.function,
      relay: stack.push.relay,
      notifier: stack.push.notifier,
    };
    for (const name of FUNCTION_NAMES) {
      const fn = constructs[name];
      const properties = template.Resources[logicalId(fn.fn)]?.Properties as {
        Handler: string;
        Timeout: number;
        MemorySize: number;
        Code: { S3Key: string };
        Environment: { Variables: Record<string, unknown> };
      };
      if (properties.Handler !== 'index.handler')
        throw new Error(`${name}: handler ${properties.Handler}, expected index.handler`);
      const assetDir = join(assemblyDir, `asset.${properties.Code.S3Key.replace(/\.zip$/, '')}`);
      if (!existsSync(join(assetDir, 'index.mjs'))) throw new Error(`${name}: no index.mjs in ${assetDir}`);
      const dir = mkdtempSync(join(tmpdir(), `lambda-${name}-`));
      dirs.push(dir);
      cpSync(assetDir, dir, { recursive: true });
      // An empty folder: nothing on the way up may offer packages the asset does not ship.
      for (let up = dirname(dir); up !== dirname(up); up = dirname(up)) {
        if (existsSync(join(up, 'node_modules')))
          throw new Error(`${up}/node_modules exists: the asset would not start from an empty folder`);
      }
      const variables = Object.fromEntries(
        Object.entries(properties.Environment.Variables).map(([key, value]) => [
          key,
          resolve(name, key, value),
        ]),
      );
      functions.set(name, {
        name,
        construct: fn.fn,
        dir,
        timeoutMs: properties.Timeout * 1000,
        memoryMb: properties.MemorySize,
        bundleBytes: statSync(join(dir, 'index.mjs')).size,
        assetBytes: sizeOf(dir),
        environment: {
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
          // Where the local servers listen (unset on AWS).
          S3_ENDPOINT: resources.endpoints.s3,
          DYNAMODB_ENDPOINT: resources.endpoints.dynamodb,
          SQS_ENDPOINT: resources.endpoints.sqs,
          POWERTOOLS_LOG_LEVEL: 'ERROR',
          ...LOCAL_ONLY[name]?.(resources),
        },
      });
    }
    const runDir = mkdtempSync(join(tmpdir(), 'image-pipeline-start-run-'));
    dirs.push(runDir);
    writeFileSync(join(runDir, 'runner.mjs'), RUNNER);
    return { stack, functions, runDir, close };
  } catch (error) {
    close();
    throw error;
  }
}

/**
 * Starts a fresh Node.js process in the function's folder, imports its handler and invokes it once
 * with `event`; `without` leaves variables out of its environment. Throws with the process's output
 * when the import or the invocation fails.
 */
export async function invokeFresh(
  deployed: DeployedFunctions,
  name: FunctionName,
  event: unknown,
  without: readonly string[] = [],
): Promise<Invocation> {
  const fn = deployed.functions.get(name);
  if (!fn) throw new Error(`no function ${name}`);
  const { runDir } = deployed;
  const id = randomUUID();
  const eventFile = join(runDir, `${id}.event.json`);
  const resultFile = join(runDir, `${id}.result.json`);
  writeFileSync(eventFile, JSON.stringify(event));
  const handlerUrl = pathToFileURL(join(fn.dir, 'index.mjs')).href;
  const spawned = performance.now();
  const child = spawn(
    LAMBDA_NODE,
    [join(runDir, 'runner.mjs'), handlerUrl, eventFile, resultFile, String(fn.timeoutMs)],
    {
      cwd: fn.dir,
      env: Object.fromEntries(Object.entries(fn.environment).filter(([key]) => !without.includes(key))),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  let readyAt = Number.NaN;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (Number.isNaN(readyAt) && output.includes(READY_MARK)) readyAt = performance.now();
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
  rmSync(eventFile, { force: true });
  rmSync(resultFile, { force: true });
  if (report.phase !== 'done') {
    throw new Error(
      `${name} failed to ${report.phase}: ${report.error}\n--- output ---\n${output.slice(-4000)}`,
    );
  }
  return { ...(report as Invocation), spawnToReadyMs: readyAt - spawned };
}
