import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import * as z from 'zod';
import type { PipelineMetrics } from '../shared/observability.ts';
import type { WebhookJob, WebhookSigner } from '../shared/push/webhooks.ts';
import type { Attempt } from './post-webhook.ts';

export interface NotifierDeps {
  signer: WebhookSigner;
  /** Sends one signed attempt (post-webhook.ts); never throws. */
  post: (job: WebhookJob, headers: Record<string, string>) => Promise<Attempt>;
  /** Hides a message for `seconds`: when it comes back, that is the next attempt. */
  retryAfter: (receiptHandle: string, seconds: number) => Promise<void>;
  /** Seconds to wait after each failed attempt; attempts = delays + 1 (the queue's maxReceiveCount). */
  retryDelaysSeconds: readonly number[];
  metrics: PipelineMetrics;
  logger: {
    info(message: string, ...extra: unknown[]): void;
    warn(message: string, ...extra: unknown[]): void;
    error(message: string, ...extra: unknown[]): void;
  };
  now?: () => Date;
}

const JobSchema = z.object({ id: z.string().min(1), url: z.string().min(1), body: z.string() });

/**
 * Delivers one SQS batch of webhooks, all at once. A message is deleted when its receiver answered
 * 2xx; otherwise it stays, hidden for the next delay of the schedule (its receive count is the
 * attempt number), and after the last attempt it is let go to the queue's DLQ. Receivers get the
 * same `webhook-id` and body every time; the signature is made afresh for each attempt's timestamp.
 */
export async function processDeliveries(deps: NotifierDeps, event: SQSEvent): Promise<SQSBatchResponse> {
  const failed = await Promise.all(event.Records.map((record) => deliver(deps, record)));
  return {
    batchItemFailures: event.Records.filter((_, i) => failed[i]).map((record) => ({
      itemIdentifier: record.messageId,
    })),
  };
}

/** Returns true when the message must stay in the queue. */
async function deliver(deps: NotifierDeps, record: SQSRecord): Promise<boolean> {
  let job: WebhookJob;
  try {
    job = JobSchema.parse(JSON.parse(record.body));
  } catch (error) {
    // Nothing will make it deliverable: drop it, loudly.
    deps.logger.error('Dropping a webhook message that is not a webhook job', {
      messageId: record.messageId,
      error,
    });
    return false;
  }
  const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
  const now = (deps.now ?? (() => new Date()))();
  const result = await deps.post(job, deps.signer.headers(job, now));
  const about = {
    webhookId: job.id,
    host: hostOf(job.url),
    attempt,
    status: result.status,
    error: result.error,
  };
  if (result.ok) {
    deps.metrics.webhookAttempt('delivered');
    deps.logger.info('webhook delivered', about);
    return false;
  }
  const delay = deps.retryDelaysSeconds[attempt - 1];
  if (delay === undefined) {
    deps.metrics.webhookAttempt('gave_up');
    deps.logger.error('webhook not delivered after its last attempt; the message goes to the DLQ', about);
    await hide(deps, record, 0);
    return true;
  }
  deps.metrics.webhookAttempt('retrying');
  deps.logger.warn('webhook attempt failed; retrying', { ...about, retryInSeconds: delay });
  await hide(deps, record, delay);
  return true;
}

async function hide(deps: NotifierDeps, record: SQSRecord, seconds: number): Promise<void> {
  try {
    await deps.retryAfter(record.receiptHandle, seconds);
  } catch (error) {
    // The message comes back after the queue's own visibility timeout instead.
    deps.logger.warn('Could not set the retry delay of a webhook message', {
      messageId: record.messageId,
      error,
    });
  }
}

const hostOf = (url: string) => (URL.canParse(url) ? new URL(url).host : 'invalid');
