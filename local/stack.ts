import { mkdir } from 'node:fs/promises';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createTable } from '../functions/shared/adapters.ts';
import { getConfig } from '../functions/shared/config.ts';
import { observeEvents } from '../functions/shared/fate/observe.ts';
import { fanOut, webhookQueueSink } from '../functions/shared/push/sinks.ts';
import { Sha256 } from '../functions/shared/sha256.ts';
import { startEmulators } from './emulators/index.ts';
import { fileEventSink, startOutboxRelay } from './glue/events.ts';
import { startGateway } from './glue/gateway.ts';
import { notificationBridge } from './glue/notifications.ts';
import { startPoller } from './glue/poller.ts';
import { PrometheusMetrics } from './glue/prometheus.ts';
import { localWebhookSecret } from './glue/webhook-secret.ts';
import type { LocalSettings } from './settings.ts';

export interface LocalStack {
  apiUrl: string;
  s3Endpoint: string;
  dynamodbEndpoint: string;
  /** The records table on that server. */
  tableName: string;
  sqsEndpoint: string;
  queueUrl: string;
  dlqUrl: string;
  /** The webhook queue the notifier reads, and its dead-letter queue. */
  webhookQueueUrl: string;
  webhookDlqUrl: string;
  /** The secret webhooks are signed with (`whsec_...`). */
  webhookSecret: string;
  /** The events port: every recorded event, once, as it is handed on. */
  events: Awaited<ReturnType<typeof fileEventSink>>;
  /** Stops taking requests and messages, finishes work in flight, and closes the servers. */
  stop(): Promise<void>;
}

const NAMES = {
  uploadBucket: 'photo-intake-uploads',
  variantsBucket: 'photo-intake-variants',
  table: 'photo-intake',
  queue: 'photo-intake-work',
  dlq: 'photo-intake-work-dlq',
  webhookQueue: 'photo-intake-webhooks',
  webhookDlq: 'photo-intake-webhooks-dlq',
  uploadPrefix: 'uploads/',
} as const;

// The local servers' fixed development credentials (those of the S3 server's default account).
const LOCAL_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

export interface LocalStackOptions {
  /**
   * Puts something between the handlers and a server, e.g. a proxy that injects faults in tests;
   * returns the endpoint the handlers should use.
   */
  wrapEndpoint?: (service: 's3' | 'dynamodb' | 'sqs', endpoint: string) => Promise<string>;
}

/**
 * Runs the whole pipeline in this process: S3-, SQS- and DynamoDB-compatible servers on loopback,
 * with the glue that stands in for S3 notifications, Lambda's SQS poller and API Gateway. The
 * handlers are the deployed ones, unchanged, configured through their environment.
 */
export async function startLocalStack(
  settings: LocalSettings,
  log: (line: string) => void,
  options: LocalStackOptions = {},
): Promise<LocalStack> {
  await mkdir(settings.dataDir, { recursive: true });
  const { webhooks } = settings;
  const webhookSecret = await localWebhookSecret(settings.dataDir, webhooks.secret);
  const emulators = await startEmulators({
    dataDir: settings.dataDir,
    buckets: { upload: NAMES.uploadBucket, variants: NAMES.variantsBucket },
    tableName: NAMES.table,
    queueName: NAMES.queue,
    dlqName: NAMES.dlq,
    visibilityTimeoutSeconds: settings.visibilityTimeoutSeconds,
    maxReceiveCount: settings.maxReceiveCount,
    extraQueues: [
      {
        name: NAMES.webhookQueue,
        dlqName: NAMES.webhookDlq,
        // A crashed attempt is retried after this; it must outlast one attempt.
        visibilityTimeoutSeconds: Math.max(10, Math.ceil((webhooks.timeoutMs * 3) / 1000)),
        // One receive per attempt: the first, then one per retry delay.
        maxReceiveCount: webhooks.retryDelaysSeconds.length + 1,
      },
    ],
    s3Port: settings.s3Port,
    corsAllowedOrigins: settings.corsAllowedOrigins,
  });

  const webhookQueue = emulators.extraQueues[NAMES.webhookQueue];
  if (!webhookQueue) throw new Error('the webhook queue was not created');
  const region = 'us-east-1';
  const wrap = options.wrapEndpoint ?? ((_service: string, endpoint: string) => Promise.resolve(endpoint));
  const handlerEndpoints = {
    s3: await wrap('s3', emulators.s3Endpoint),
    dynamodb: await wrap('dynamodb', emulators.dynamodbEndpoint),
    sqs: await wrap('sqs', emulators.sqsEndpoint),
  };
  // The handlers read their configuration once, on import: set it first.
  Object.assign(process.env, {
    ...LOCAL_CREDENTIALS,
    AWS_REGION: region,
    TABLE_NAME: NAMES.table,
    UPLOAD_BUCKET: NAMES.uploadBucket,
    VARIANTS_BUCKET: NAMES.variantsBucket,
    UPLOAD_PREFIX: NAMES.uploadPrefix,
    QUEUE_URL: emulators.queueUrl,
    DLQ_URL: emulators.dlqUrl,
    // Locally the queue is ours alone: look for stuck work after two visibility timeouts, and for
    // lost notifications a minute after the object landed.
    RECONCILE_STUCK_AFTER_SECONDS: String(settings.visibilityTimeoutSeconds * 2),
    RECONCILE_MISSED_EVENT_AFTER_SECONDS: '60',
    S3_ENDPOINT: handlerEndpoints.s3,
    DYNAMODB_ENDPOINT: handlerEndpoints.dynamodb,
    SQS_ENDPOINT: handlerEndpoints.sqs,
    MAX_RECEIVE_COUNT: String(settings.maxReceiveCount),
    PROCESSING_TIMEOUT_MS: String(settings.processingTimeoutMs),
    CALLBACK_ALLOW_PRIVATE: String(webhooks.allowPrivate),
    WEBHOOK_QUEUE_URL: webhookQueue.queueUrl,
    WEBHOOK_SECRET: webhookSecret,
    WEBHOOK_TIMEOUT_MS: String(webhooks.timeoutMs),
    WEBHOOK_RETRY_DELAYS_SECONDS: webhooks.retryDelaysSeconds.join(','),
    POWERTOOLS_LOG_LEVEL: settings.logLevel,
    POWERTOOLS_DEV: 'true',
  });
  // Every function here records into one Prometheus registry (`GET /metrics`), set before they load.
  const observability = await import('../functions/shared/observability.ts');
  const prometheus = new PrometheusMetrics();
  observability.recordMetricsWith(prometheus);
  const [api, optimizer, reconciler, notifier] = await Promise.all([
    import('../functions/api/handler.ts'),
    import('../functions/optimizer/handler.ts'),
    import('../functions/reconciler/handler.ts'),
    import('../functions/notifier/handler.ts'),
  ]);

  const onError = (where: string) => (error: unknown) =>
    log(`${where}: ${error instanceof Error ? error.message : String(error)}`);
  const sqs = new SQSClient({ region, endpoint: handlerEndpoints.sqs, sha256: Sha256 });
  const bridge = notificationBridge({
    sqs,
    queueUrl: emulators.queueUrl,
    bucket: NAMES.uploadBucket,
    prefix: NAMES.uploadPrefix,
    onError: onError('notification'),
  });
  emulators.onObjectCreated((event) => bridge.onObjectCreated(event));

  // The queue server may have lost messages, and a crash may have lost notifications: before taking
  // new work, queue every stored object still `pending`, and work stuck past a visibility timeout.
  const recovered = await reconciler.handler({
    detail: { missedEventAfterSeconds: 0, stuckAfterSeconds: settings.visibilityTimeoutSeconds },
  });
  const resumed = recovered.queuedMissedEvents + recovered.requeuedStuck;
  if (resumed > 0) log(`resuming ${resumed} unfinished image(s) from ${settings.dataDir}`);
  const reconciling = startReconcileTimer(
    () => reconciler.handler({}),
    settings.reconcileIntervalMs,
    onError('reconciler'),
  );

  // The events port: what the deployed outbox stream hands to EventBridge and webhooks. Webhooks are
  // queued first (a failure there leaves the rows for the next run); the file sink hands each event
  // once to the metrics and the finished-image log, as the deployed relay does.
  const events = await fileEventSink(settings.dataDir);
  const { logger, metrics } = observability.observability('relay');
  const observe = observeEvents(metrics, logger);
  events.subscribe((fresh) => observe.publish(fresh));
  const relay = startOutboxRelay(
    createTable(getConfig()),
    fanOut(webhookQueueSink(sqs, webhookQueue.queueUrl), events),
    { onItemsInserted: emulators.onItemsInserted, sweepMs: 5_000, onError: onError('events') },
  );
  // Plays the notifier's SQS event source: webhooks are delivered beside the optimizer, never in its way.
  const notifying = startPoller({
    functionName: 'notifier',
    sqs,
    queueUrl: webhookQueue.queueUrl,
    queueArn: webhookQueue.queueArn,
    region,
    handler: notifier.handler,
    concurrency: 2,
    batchSize: 10,
    functionTimeoutMs: webhooks.timeoutMs * 2,
    onError: onError('notifier'),
  });

  const poller = startPoller({
    sqs,
    queueUrl: emulators.queueUrl,
    queueArn: emulators.queueArn,
    region,
    handler: optimizer.handler,
    concurrency: settings.optimizerConcurrency,
    // One message per invocation, as deployed (lib/constructs/image-optimizer.ts): a worker holding a
    // batch would keep work from an idle one at the end of a burst.
    batchSize: 1,
    functionTimeoutMs: settings.processingTimeoutMs * 1.5,
    onError: onError('optimizer'),
  });
  const gateway = await startGateway({
    port: settings.port,
    corsAllowedOrigins: settings.corsAllowedOrigins,
    handler: api.handler,
    metrics: async () => ({
      contentType: prometheus.registry.contentType,
      body: await prometheus.registry.metrics(),
    }),
    onError: onError('api'),
  });

  return {
    apiUrl: gateway.url,
    s3Endpoint: handlerEndpoints.s3,
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    tableName: NAMES.table,
    sqsEndpoint: emulators.sqsEndpoint,
    queueUrl: emulators.queueUrl,
    dlqUrl: emulators.dlqUrl,
    webhookQueueUrl: webhookQueue.queueUrl,
    webhookDlqUrl: webhookQueue.dlqUrl,
    webhookSecret,
    events,
    async stop() {
      await gateway.stop();
      await bridge.drain();
      await reconciling.stop();
      await poller.stop();
      await relay.stop();
      await notifying.stop();
      sqs.destroy();
      await emulators.stop();
    },
  };
}

/** Plays the deployed reconciler's schedule; runs never overlap. */
function startReconcileTimer(
  run: () => Promise<unknown>,
  intervalMs: number,
  onError: (error: unknown) => void,
) {
  let current: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    current = current.then(run).catch(onError);
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
