/**
 * The local stack's S3, DynamoDB and SQS servers alone, in a process of their own, for a benchmark
 * that runs a function in its own process and must tell the function's CPU from the services'.
 * Started with `fork` (an IPC channel): sends `{ ready: Emulators' endpoints }` once listening, then
 * `{ created: S3Event }` for every object stored, as S3 would notify; stops when the channel closes.
 * With a latency, S3 and DynamoDB are reached through a proxy (in this process) that holds every
 * request that long before passing it on: the round trip a function has to the real services.
 *
 *   fork('bench/support/services.ts', [dataDir, latencyMs])
 */
import { startEmulators } from '../../local/emulators/index.ts';
import { startFaultProxy } from '../../test/support/fault-proxy.ts';

export const SERVICE_NAMES = {
  uploadBucket: 'bench-uploads',
  variantsBucket: 'bench-variants',
  table: 'bench-records',
  queue: 'bench-work',
  dlq: 'bench-work-dlq',
} as const;

export interface ServiceEndpoints {
  s3Endpoint: string;
  dynamodbEndpoint: string;
  sqsEndpoint: string;
  queueUrl: string;
}

if (import.meta.main) {
  const dataDir = process.argv[2];
  const latencyMs = Number(process.argv[3] ?? 0);
  if (!dataDir || !process.send)
    throw new Error('usage: fork(services.ts, [dataDir, latencyMs]) with an IPC channel');
  const emulators = await startEmulators({
    dataDir,
    buckets: { upload: SERVICE_NAMES.uploadBucket, variants: SERVICE_NAMES.variantsBucket },
    tableName: SERVICE_NAMES.table,
    queueName: SERVICE_NAMES.queue,
    dlqName: SERVICE_NAMES.dlq,
    visibilityTimeoutSeconds: 60,
    maxReceiveCount: 3,
  });
  emulators.onObjectCreated((event) => {
    process.send?.({ created: event });
  });
  const delayed = async (endpoint: string) => {
    if (latencyMs <= 0) return { endpoint, stop: async () => {} };
    const proxy = await startFaultProxy(endpoint);
    proxy.inject({ match: () => true, times: Number.POSITIVE_INFINITY, delayMs: latencyMs });
    return proxy;
  };
  const [s3, dynamodb] = await Promise.all([
    delayed(emulators.s3Endpoint),
    delayed(emulators.dynamodbEndpoint),
  ]);
  const { sqsEndpoint, queueUrl } = emulators;
  process.send({
    ready: {
      s3Endpoint: s3.endpoint,
      dynamodbEndpoint: dynamodb.endpoint,
      sqsEndpoint,
      queueUrl,
    } satisfies ServiceEndpoints,
  });
  process.once('disconnect', () => {
    void Promise.all([s3.stop(), dynamodb.stop()])
      .then(() => emulators.stop())
      .finally(() => process.exit(0));
  });
}
