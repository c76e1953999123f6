import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { EventSink, PipelineEvent } from '../fate/events.ts';
import { chunk } from '../records/table.ts';
import { webhookJob } from './webhooks.ts';

/** Hands the same events to every sink, in order; the first failure stops the rest (all are retried). */
export function fanOut(...sinks: EventSink[]): EventSink {
  return {
    async publish(events) {
      for (const sink of sinks) await sink.publish(events);
    },
  };
}

/** Thrown when a downstream service refused some of the events; the relay retries them all. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
  readonly code = 'PublishError';
}

/**
 * Queues the webhook of every completed batch that has a `callbackUrl`, for the notifier to deliver
 * with retries. The message carries the finished body, so every attempt sends the same bytes.
 */
export function webhookQueueSink(sqs: SQSClient, queueUrl: string): EventSink {
  return {
    async publish(events) {
      const jobs = events.flatMap((event) => {
        const job = event.type === 'batch.completed' ? webhookJob(event) : undefined;
        return job ? [job] : [];
      });
      for (const entries of chunk(jobs, 10)) {
        const sent = await sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: entries.map((job, i) => ({ Id: String(i), MessageBody: JSON.stringify(job) })),
          }),
        );
        if (sent.Failed && sent.Failed.length > 0) {
          throw new PublishError(`The webhook queue refused ${sent.Failed.length} message(s).`);
        }
      }
    },
  };
}

/** EventBridge detail-types, one per event type (the contract's names). */
export const DETAIL_TYPES: Record<PipelineEvent['type'], string> = {
  'image.ready': 'Image Ready',
  'image.failed': 'Image Failed',
  'batch.completed': 'Batch Completed',
};

export const EVENT_SOURCE = 'photo-intake';

/** Puts every event on the stack's bus: source `photo-intake`, the event (less its callbackUrl) as detail. */
export function eventBridgeSink(client: EventBridgeClient, busName: string): EventSink {
  return {
    async publish(events) {
      for (const entries of chunk(events, 10)) {
        const put = await client.send(
          new PutEventsCommand({
            Entries: entries.map((event) => {
              const { callbackUrl: _url, ...detail } = event as PipelineEvent & { callbackUrl?: string };
              return {
                EventBusName: busName,
                Source: EVENT_SOURCE,
                DetailType: DETAIL_TYPES[event.type],
                Time: new Date(event.time),
                Resources: [],
                Detail: JSON.stringify(detail),
              };
            }),
          }),
        );
        if ((put.FailedEntryCount ?? 0) > 0) {
          throw new PublishError(`EventBridge refused ${put.FailedEntryCount} event(s).`);
        }
      }
    },
  };
}
