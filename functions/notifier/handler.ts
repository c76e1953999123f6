import { ChangeMessageVisibilityCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { ConfigError, getConfig } from '../shared/config.ts';
import { observability } from '../shared/observability.ts';
import { CallbackPolicy } from '../shared/push/callback-url.ts';
import { loadWebhookSecret } from '../shared/push/secret.ts';
import { WebhookSigner } from '../shared/push/webhooks.ts';
import { createSqsClient } from '../shared/sqs-client.ts';
import { postWebhook } from './post-webhook.ts';
import { type NotifierDeps, processDeliveries } from './process-deliveries.ts';

// Built once per process: configuration, SDK clients, the signing secret and the target policy.
const config = getConfig();
const { webhookQueueUrl, webhookTimeoutMs, retryDelaysSeconds, allowPrivateCallbacks } = config.push;
if (!webhookQueueUrl) throw new ConfigError('The notifier needs WEBHOOK_QUEUE_URL.');
const sqs = createSqsClient(config);
const { logger, metrics, instrument } = observability('notifier');
const policy = new CallbackPolicy({ allowPrivate: allowPrivateCallbacks });
const deps: NotifierDeps = {
  signer: new WebhookSigner(await loadWebhookSecret(config)),
  post: (job, headers) => postWebhook(job, headers, { policy, timeoutMs: webhookTimeoutMs }),
  retryAfter: async (receiptHandle, seconds) => {
    await sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: webhookQueueUrl,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: seconds,
      }),
    );
  },
  retryDelaysSeconds,
  metrics,
  logger,
};

export const handler = instrument((event: SQSEvent) => processDeliveries(deps, event));
