/**
 * The local stack's S3, DynamoDB and SQS servers alone, in a process of their own, for a benchmark
 * that runs a function in its own process and must tell the function's CPU from the services'.
 * Started with `fork` (an IPC channel): sends `{ ready: Emulators' endpoints }` once listening, then
 * `{ created: S3Event }` for every object stored, as S3 would notify; stops when the channel closes.
 *
 *   fork('bench/support/services.ts', [dataDir])
 */
import { startEmulators } from '../../local/emulators/index.ts';

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
  if (!dataDir || !process.send) throw new Error('usage: fork(services.ts, [dataDir]) with an IPC channel');
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
  const { s3Endpoint, dynamodbEndpoint, sqsEndpoint, queueUrl } = emulators;
  process.send({ ready: { s3Endpoint, dynamodbEndpoint, sqsEndpoint, queueUrl } satisfies ServiceEndpoints });
  process.once('disconnect', () => {
    void emulators.stop().finally(() => process.exit(0));
  });
}
