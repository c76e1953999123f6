import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notificationBridge } from '../../local/glue/notifications.ts';
import { corpusFile } from '../support/corpus.ts';
import {
  type DeployedFunctions,
  deployFunctions,
  type FunctionName,
  type Invocation,
  invokeFresh,
  type LocalStack,
  REGION,
  startLocalResources,
} from '../support/lambda-assets.ts';
import { LOCAL_CREDENTIALS } from '../support/local-clients.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

/**
 * Every function starts as deployed: each Lambda asset `cdk synth` wrote is copied into an empty
 * folder (nothing but what the asset ships: no project node_modules above it) and imported by a
 * fresh Node.js 24 process, as Lambda's runtime would, then invoked once against the local
 * emulators. An import error, a missing package or a configuration the function refuses fails here.
 * The synth, the copies, the environment and the runner are test/support/lambda-assets.ts's (shared
 * with bench/coldstart.ts).
 */

const PHOTO = corpusFile('valid/sharp--Landscape_1.jpg');

let local: LocalStack;
let deployed: DeployedFunctions;
let sqs: SQSClient;
let bridge: ReturnType<typeof notificationBridge>;
/** Each function's starts: from the process's start to its handler ready (ms). */
const coldStartsMs = new Map<FunctionName, number[]>();

beforeAll(async () => {
  local = await startLocalResources('start-test');
  const { emulators, resources } = local;
  deployed = deployFunctions(resources);
  sqs = new SQSClient({
    region: REGION,
    endpoint: emulators.sqsEndpoint,
    credentials: LOCAL_CREDENTIALS,
  });
  bridge = notificationBridge({
    sqs,
    queueUrl: emulators.queueUrl,
    bucket: resources.uploadBucket,
    prefix: 'uploads/',
    onError: (error) => {
      throw error;
    },
  });
  emulators.onObjectCreated((event) => bridge.onObjectCreated(event));
});

afterAll(async () => {
  const figures = [...(deployed?.functions.values() ?? [])].map((fn) => ({
    function: fn.name,
    bundleKiB: Math.round(fn.bundleBytes / 1024),
    assetMiB: Number((fn.assetBytes / 1024 ** 2).toFixed(1)),
    coldStartMs: (coldStartsMs.get(fn.name) ?? []).map(Math.round),
  }));
  // The figures issue 12 asks for (bundle sizes, fresh process to handler ready).
  console.log(`function start figures: ${JSON.stringify(figures)}`);
  await bridge?.drain();
  sqs?.destroy();
  await local?.stop();
  deployed?.close();
});

/** Invokes the function once in a fresh process (invokeFresh), on Node 24, and keeps its start time. */
async function invoke(
  name: FunctionName,
  event: unknown,
  without: readonly string[] = [],
): Promise<Invocation> {
  const done = await invokeFresh(deployed, name, event, without);
  expect(done.node).toMatch(/^v24\./);
  coldStartsMs.set(name, [...(coldStartsMs.get(name) ?? []), done.readyMs]);
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
    for (const fn of deployed.functions.values()) {
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
        QueueUrl: local.emulators.queueUrl,
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
          eventSourceARN: local.emulators.queueArn,
          awsRegion: REGION,
        },
      ],
    };
    const processed = await invoke('optimizer', event);
    // Lambda deletes the messages of a batch the function reports no failure for.
    expect(processed.result).toEqual({ batchItemFailures: [] });
    await sqs.send(
      new DeleteMessageCommand({ QueueUrl: local.emulators.queueUrl, ReceiptHandle: message.ReceiptHandle }),
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

  it('relay: starts and hands on nothing for a stream batch with no new outbox row', async () => {
    const { result } = await invoke('relay', {
      Records: [{ eventName: 'MODIFY', dynamodb: { NewImage: { pk: { S: 'B#x' }, sk: { S: '#BATCH' } } } }],
    });
    expect(result).toBe(0);
  });

  it('notifier: delivers one signed webhook that the standardwebhooks verifier accepts', async () => {
    const receiver = await startWebhookReceiver(local.resources.webhookSecret.value);
    try {
      const job = { id: 'batch_start_completed', url: receiver.url, body: '{"type":"batch.completed"}' };
      const { result } = await invoke('notifier', {
        Records: [
          {
            messageId: 'm1',
            receiptHandle: 'r1',
            body: JSON.stringify(job),
            attributes: { ApproximateReceiveCount: '1' },
            messageAttributes: {},
            eventSource: 'aws:sqs',
          },
        ],
      });
      expect(result).toEqual({ batchItemFailures: [] });
      expect(receiver.deliveries).toMatchObject([{ id: job.id, body: job.body, verified: true }]);
    } finally {
      await receiver.close();
    }
  });
});
