import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type DynamoServer, ensureTable, startDynamoServer } from './dynamodb.ts';
import { type ObjectCreatedListener, startS3Server } from './s3.ts';
import { type QueuePair, type QueuePairOptions, startSqsServer } from './sqs.ts';

export type { ObjectCreatedListener } from './s3.ts';

export interface EmulatorsOptions {
  /** Objects (`s3/`), records (`dynamodb/`) and queues (`sqs/`) live under it and survive restarts. */
  dataDir: string;
  buckets: { upload: string; variants: string };
  tableName: string;
  queueName: string;
  dlqName: string;
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  /** More queues with their DLQs (the webhook queue). */
  extraQueues?: QueuePairOptions[];
  /** Origins allowed to upload from a browser; any by default (the servers only listen on loopback). */
  corsAllowedOrigins?: readonly string[];
  /** The S3 server's port, kept across restarts so that presigned URLs stay valid; 0 (default) picks one. */
  s3Port?: number;
}

export interface Emulators {
  s3Endpoint: string;
  dynamodbEndpoint: string;
  sqsEndpoint: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
  extraQueues: Record<string, QueuePair>;
  onObjectCreated(listener: ObjectCreatedListener): void;
  /** Items transactions created in the table, as its stream would report them. */
  onItemsInserted: DynamoServer['onInserted'];
  /** Closes all three servers (each waits for its requests in flight). */
  stop(): Promise<void>;
}

/**
 * Starts S3-, DynamoDB- and SQS-compatible servers on loopback (S3 on `s3Port`, the others on free
 * ports), with the buckets, the
 * table and the queues created (or reused from `dataDir`). Prints nothing.
 */
export async function startEmulators(options: EmulatorsOptions): Promise<Emulators> {
  const dirs = {
    s3: join(options.dataDir, 's3'),
    dynamodb: join(options.dataDir, 'dynamodb'),
    sqs: join(options.dataDir, 'sqs'),
  };
  await Promise.all(Object.values(dirs).map((dir) => mkdir(dir, { recursive: true })));

  const started = await Promise.allSettled([
    startS3Server({
      directory: dirs.s3,
      port: options.s3Port ?? 0,
      buckets: [options.buckets.upload, options.buckets.variants],
      corsAllowedOrigins: options.corsAllowedOrigins ?? ['*'],
    }),
    startDynamoServer({ directory: dirs.dynamodb }),
    startSqsServer({
      dataDir: dirs.sqs,
      queueName: options.queueName,
      dlqName: options.dlqName,
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
      maxReceiveCount: options.maxReceiveCount,
      ...(options.extraQueues ? { extraQueues: options.extraQueues } : {}),
    }),
  ]);
  const running = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const stopAll = async () => {
    const stopped = await Promise.allSettled(running.map((server) => server.stop()));
    const failure = stopped.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
  };
  const [s3, dynamodb, sqs] = started;
  if (s3.status === 'rejected' || dynamodb.status === 'rejected' || sqs.status === 'rejected') {
    await stopAll();
    const failure = started.find((result) => result.status === 'rejected');
    throw failure?.reason;
  }

  try {
    const client = new DynamoDBClient({
      region: 'us-east-1',
      endpoint: dynamodb.value.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      await ensureTable(client, options.tableName);
    } finally {
      client.destroy();
    }
  } catch (error) {
    await stopAll();
    throw error;
  }

  return {
    s3Endpoint: s3.value.endpoint,
    dynamodbEndpoint: dynamodb.value.endpoint,
    sqsEndpoint: sqs.value.endpoint,
    queueUrl: sqs.value.queueUrl,
    queueArn: sqs.value.queueArn,
    dlqUrl: sqs.value.dlqUrl,
    dlqArn: sqs.value.dlqArn,
    extraQueues: sqs.value.extraQueues,
    onObjectCreated: (listener) => s3.value.onObjectCreated(listener),
    onItemsInserted: (listener) => dynamodb.value.onInserted(listener),
    stop: stopAll,
  };
}
