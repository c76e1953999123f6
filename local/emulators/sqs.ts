import { Server } from 'node:net';
import { DatabaseSync } from 'node:sqlite';
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SetQueueAttributesCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { type FauxqsServer, startFauxqs } from 'fauxqs';

export interface SqsServerOptions {
  /**
   * Directory for the queues' SQLite database; in memory when absent. fauxqs writes every change
   * through at once and restores queues and messages (ready, delayed and in flight, with their
   * receive counts and visibility deadlines) on restart, which is what lets the local stack finish
   * work in flight after a restart. Checked by test/integration/storage/emulators.test.ts.
   */
  dataDir?: string;
  /** Loopback port; 0 (the default) picks a free one. */
  port?: number;
  queueName: string;
  dlqName: string;
  visibilityTimeoutSeconds: number;
  /** Receives after which a message moves to the dead-letter queue. */
  maxReceiveCount: number;
  /** More queues, each with its own DLQ (e.g. the webhook queue). */
  extraQueues?: QueuePairOptions[];
}

/** A queue that redrives to its own dead-letter queue. */
export interface QueuePairOptions {
  name: string;
  dlqName: string;
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
}

export interface QueuePair {
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
}

export interface SqsServer {
  /** `http://127.0.0.1:<port>`; any credentials are accepted. Always pass it as the client's endpoint:
   * queue URLs only identify queues (their host is not resolvable). */
  endpoint: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
  /** The extra queues, by name. */
  extraQueues: Record<string, QueuePair>;
  stop(): Promise<void>;
}

/** Starts an SQS-compatible server (fauxqs) on 127.0.0.1 with a work queue that redrives to a DLQ. */
export async function startSqsServer(options: SqsServerOptions): Promise<SqsServer> {
  const server = await onLoopback(() =>
    withoutFsyncPerCommit(() =>
      startFauxqs({
        port: options.port ?? 0,
        logger: false,
        ...(options.dataDir !== undefined && { dataDir: options.dataDir }),
      }),
    ),
  );
  try {
    const endpoint = `http://127.0.0.1:${server.port}`;
    const pairs: QueuePairOptions[] = [
      {
        name: options.queueName,
        dlqName: options.dlqName,
        visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
        maxReceiveCount: options.maxReceiveCount,
      },
      ...(options.extraQueues ?? []),
    ];
    // `setup` leaves a queue restored from the data directory (and its messages) alone, where
    // `createQueue` would replace it; the attributes are then set so that they follow the options.
    server.setup({ queues: pairs.flatMap((pair) => [{ name: pair.dlqName }, { name: pair.name }]) });
    const sqs = new SQSClient({
      region: 'us-east-1',
      endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const [work, ...extra] = await Promise.all(pairs.map((pair) => configurePair(sqs, pair)));
      if (!work) throw new Error('fauxqs queue set-up incomplete');
      const { queueUrl, queueArn, dlqUrl, dlqArn } = work;
      const extraQueues = Object.fromEntries(
        pairs.slice(1).map((pair, i) => [pair.name, extra[i] as QueuePair]),
      );
      return { endpoint, queueUrl, queueArn, dlqUrl, dlqArn, extraQueues, stop: () => server.stop() };
    } finally {
      sqs.destroy();
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** Finds a pair's URLs and ARNs and sets the queue's visibility timeout and redrive policy. */
async function configurePair(sqs: SQSClient, pair: QueuePairOptions): Promise<QueuePair> {
  const [queueUrl, dlqUrl] = await Promise.all(
    [pair.name, pair.dlqName].map(async (QueueName) => {
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName }));
      if (!QueueUrl) throw new Error(`fauxqs returned no URL for queue ${QueueName}`);
      return QueueUrl;
    }),
  );
  const [queueArn, dlqArn] = await Promise.all(
    [queueUrl, dlqUrl].map(async (url) => {
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
      );
      if (!Attributes?.QueueArn) throw new Error(`fauxqs returned no ARN for queue ${url}`);
      return Attributes.QueueArn;
    }),
  );
  if (!queueUrl || !dlqUrl || !queueArn || !dlqArn) throw new Error('fauxqs queue set-up incomplete');
  await sqs.send(
    new SetQueueAttributesCommand({
      QueueUrl: queueUrl,
      Attributes: {
        VisibilityTimeout: String(pair.visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: pair.maxReceiveCount }),
      },
    }),
  );
  return { queueUrl, queueArn, dlqUrl, dlqArn };
}

/**
 * fauxqs writes every message move (send, receive, delete) to SQLite synchronously, on the one
 * thread that also runs the handlers, with SQLite's default `synchronous = FULL`: an fsync per
 * commit, 5-30 ms each on a busy disk. In WAL mode `NORMAL` syncs only at checkpoints: every commit
 * survives the process being killed (it is in the OS's cache), and only a power cut can lose the
 * last ones, which is what a development stack needs. fauxqs has no option for it, so its one
 * connection is set as it turns WAL on.
 */
async function withoutFsyncPerCommit<T>(start: () => Promise<T>): Promise<T> {
  const exec = DatabaseSync.prototype.exec;
  DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
    exec.call(this, sql);
    if (/^\s*PRAGMA\s+journal_mode\s*=\s*WAL\s*$/i.test(sql)) exec.call(this, 'PRAGMA synchronous = NORMAL');
  };
  try {
    return await start();
  } finally {
    DatabaseSync.prototype.exec = exec;
  }
}

/**
 * fauxqs always listens on 0.0.0.0 (no option), which would expose an unauthenticated queue to
 * the network. While it starts, `listen` calls for 0.0.0.0 are redirected to 127.0.0.1; the result
 * is then checked, so a change in fauxqs fails here instead of silently listening everywhere.
 */
async function onLoopback(start: () => Promise<FauxqsServer>): Promise<FauxqsServer> {
  const listen = Server.prototype.listen;
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    const [first] = args;
    if (typeof first === 'object' && first !== null && (first as { host?: unknown }).host === '0.0.0.0') {
      args[0] = { ...first, host: '127.0.0.1' };
    }
    return Reflect.apply(listen, this, args) as Server;
  } as typeof listen;
  let server: FauxqsServer;
  try {
    server = await start();
  } finally {
    Server.prototype.listen = listen;
  }
  if (new URL(server.address).hostname !== '127.0.0.1') {
    await server.stop();
    throw new Error(`fauxqs listens on ${server.address}, not on loopback only`);
  }
  return server;
}
