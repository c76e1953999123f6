import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Config } from '../shared/config.ts';
import { objectsInNotification } from '../shared/notify/s3-events.ts';
import { parseUploadKey } from '../shared/storage/object-keys.ts';
import { markLanded, type ProcessingDeps, processUpload } from './process-upload.ts';

export interface QueueDeps extends ProcessingDeps {
  /** The queue's maxReceiveCount: past it the message would go to the DLQ. */
  maxReceiveCount: number;
}

/** The optimizer's dependencies from its configuration and adapters (built once, by handler.ts). */
export function queueDepsFrom(
  config: Config,
  adapters: Pick<QueueDeps, 'moves' | 'sharedFiles' | 'objects'>,
  logger: QueueDeps['logger'],
): QueueDeps {
  return {
    ...adapters,
    uploadPrefix: config.uploadPrefix,
    variantsBucket: config.variantsBucket,
    specs: config.processing.variants,
    limits: config.processing,
    maxBytes: config.limits.maxBytes,
    maxReceiveCount: config.processing.maxReceiveCount,
    logger,
  };
}

/**
 * Handles one SQS batch of S3 notifications with partial batch responses: a message is reported
 * failed (and retried by SQS) only for a transient error; a bad file is finished as `failed`.
 */
export async function processMessages(
  deps: QueueDeps,
  event: SQSEvent,
  context?: Context,
): Promise<SQSBatchResponse> {
  // Everything in this batch has landed and is queued; say so before the first one is processed.
  // The first goes straight to `processing`: an `uploaded` nobody could see would cost a write.
  const waiting = event.Records.slice(1).flatMap((record) => objectsInNotification(record.body));
  await Promise.allSettled(waiting.map((object) => markLanded(deps, object)));

  // One processor per invocation: it holds the batch's failures, and the local stack runs several
  // invocations at once in one process.
  const processor = new BatchProcessor(EventType.SQS);
  return processPartialResponse(event, (record: SQSRecord) => handleRecord(deps, record), processor, {
    ...(context ? { context } : {}),
    // One image at a time per invocation: sharp already spreads one image over the vCPUs.
    processInParallel: false,
    throwOnFullBatchFailure: false,
  });
}

async function handleRecord(deps: QueueDeps, record: SQSRecord): Promise<void> {
  const objects = objectsInNotification(record.body);
  if (objects.length === 0) {
    deps.logger.info('Acknowledging a message that names no created object (e.g. s3:TestEvent)', {
      messageId: record.messageId,
    });
    return;
  }
  for (const object of objects) {
    try {
      await processUpload(deps, object);
    } catch (error) {
      const receives = Number(record.attributes.ApproximateReceiveCount);
      const ids = parseUploadKey(deps.uploadPrefix, object.key);
      if (receives < deps.maxReceiveCount || !ids) throw error;
      // The last try: record that the image failed for good rather than leave it in `processing`,
      // and let the message go on to the DLQ, where operators see it.
      deps.logger.error('Giving up on an image after its last attempt', { ...ids, receives, error });
      await deps.moves.settle(ids, {
        status: 'failed',
        error: {
          code: 'ProcessingFailed',
          message: `Processing failed ${receives} times (the optimizer's last attempt). Upload the file again in a new batch.`,
        },
      });
      throw error;
    }
  }
}
