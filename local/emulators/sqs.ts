import { Server } from 'node:net';
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
}

export interface SqsServer {
  /** `http://127.0.0.1:<port>`; any credentials are accepted. Always pass it as the client's endpoint:
   * queue URLs only identify queues (their host is not resolvable). */
  endpoint: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
  stop(): Promise<void>;
}

/** Starts an SQS-compatible server (fauxqs) on 127.0.0.1 with a work queue that redrives to a DLQ. */
export async function startSqsServer(options: SqsServerOptions): Promise<SqsServer> {
  const server = await onLoopback(() =>
    startFauxqs({
      port: options.port ?? 0,
      logger: false,
      ...(options.dataDir !== undefined && { dataDir: options.dataDir }),
    }),
  );
  try {
    const endpoint = `http://127.0.0.1:${server.port}`;
    // `setup` leaves a queue restored from the data directory (and its messages) alone, where
    // `createQueue` would replace it; the attributes are then set so that they follow the options.
    server.setup({ queues: [{ name: options.dlqName }, { name: options.queueName }] });
    const sqs = new SQSClient({
      region: 'us-east-1',
      endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const [queueUrl, dlqUrl] = await Promise.all(
        [options.queueName, options.dlqName].map(async (QueueName) => {
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
            VisibilityTimeout: String(options.visibilityTimeoutSeconds),
            RedrivePolicy: JSON.stringify({
              deadLetterTargetArn: dlqArn,
              maxReceiveCount: options.maxReceiveCount,
            }),
          },
        }),
      );
      return { endpoint, queueUrl, queueArn, dlqUrl, dlqArn, stop: () => server.stop() };
    } finally {
      sqs.destroy();
    }
  } catch (error) {
    await server.stop();
    throw error;
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
