import { Webhook } from 'standardwebhooks';
import type { BatchCompletedEvent as WebhookBody } from '../../../contract/index.ts';
import type { BatchCompletedEvent } from '../fate/events.ts';

/**
 * One webhook to deliver, as it waits in the webhook queue. The body is fixed when the job is made,
 * so every attempt sends the same bytes under the same `webhook-id` (the event's stable id).
 */
export interface WebhookJob {
  id: string;
  url: string;
  /** The JSON body, exactly as sent. */
  body: string;
}

/** The contract's `batch.completed` body for a completed batch. */
export function webhookBody(event: BatchCompletedEvent): WebhookBody {
  return {
    type: 'batch.completed',
    timestamp: event.time,
    data: { batchId: event.batchId, total: event.total, counts: event.counts, complete: true },
  };
}

/** The webhook a completed batch owes, if it was created with a `callbackUrl`. */
export function webhookJob(event: BatchCompletedEvent): WebhookJob | undefined {
  if (!event.callbackUrl) return undefined;
  return { id: event.id, url: event.callbackUrl, body: JSON.stringify(webhookBody(event)) };
}

/** Secrets look like `whsec_<base64>`; a bare base64 value (as Secrets Manager generates it) gets the prefix. */
export function webhookSecret(value: string): string {
  const trimmed = value.trim();
  return trimmed.startsWith('whsec_') ? trimmed : `whsec_${trimmed}`;
}

/**
 * Signs webhooks the Standard Webhooks way (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), with
 * the reference library, so receivers can verify with it or any other implementation.
 */
export class WebhookSigner {
  readonly #webhook: Webhook;

  constructor(secret: string) {
    this.#webhook = new Webhook(webhookSecret(secret));
  }

  /** The three headers for one attempt: the id stays, the timestamp is the attempt's. */
  headers(job: WebhookJob, at: Date): Record<string, string> {
    return {
      'webhook-id': job.id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': this.#webhook.sign(job.id, at, job.body),
    };
  }
}
