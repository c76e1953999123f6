import { createHash } from 'node:crypto';
import type { PipelineMetrics } from '../observability.ts';
import type { EventSink, PipelineEvent } from './events.ts';

/** A stable, non-reversible stand-in for an owner id in logs (the id itself is personal data). */
export const ownerHash = (owner: string) => createHash('sha256').update(owner).digest('hex').slice(0, 16);

const seconds = (from: string | undefined, to: string | undefined) =>
  from && to ? Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000) : undefined;

/**
 * Turns the pipeline's events into its figures and into one log line per finished image (image,
 * batch, outcome, code, milliseconds; the owner only as a hash). Every final move passes through the
 * outbox, so this sees each image once, whichever function settled it.
 */
export function observeEvents(
  metrics: PipelineMetrics,
  logger: { info(message: string, ...extra: unknown[]): void },
): EventSink {
  return {
    async publish(events: readonly PipelineEvent[]) {
      for (const event of events) {
        if (event.type === 'batch.completed') {
          metrics.batchCompleted();
          logger.info('batch completed', {
            batchId: event.batchId,
            owner: ownerHash(event.owner),
            total: event.total,
            counts: event.counts,
          });
          continue;
        }
        const outcome = event.type === 'image.ready' ? 'ready' : 'failed';
        const code = event.error?.code ?? 'none';
        const processingSeconds = seconds(event.startedAt, event.time);
        metrics.imageFinished({
          outcome,
          code,
          processingSeconds,
          queueLagSeconds: seconds(event.landedAt, event.startedAt),
        });
        logger.info('image finished', {
          imageId: event.imageId,
          batchId: event.batchId,
          owner: ownerHash(event.owner),
          outcome,
          code,
          ms: processingSeconds === undefined ? undefined : Math.round(processingSeconds * 1000),
        });
      }
    },
  };
}
