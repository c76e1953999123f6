import { createHash } from 'node:crypto';
import type { Outcome, StatusMoves } from '../shared/fate/moves.ts';
import type { CreatedObject } from '../shared/notify/s3-events.ts';
import type { SharedFileRecords } from '../shared/records/ports.ts';
import type { FailureInfo, ImageItem, VariantRecord } from '../shared/records/types.ts';
import { ObjectNotFoundError, ObjectTooLargeError } from '../shared/storage/errors.ts';
import { PROCESSED_TAGS, parseUploadKey, variantKey } from '../shared/storage/object-keys.ts';
import type { ObjectStore, StoredObject } from '../shared/storage/ports.ts';
import type { VariantSpec } from '../shared/variants.ts';
import { ImageError } from './image/errors.ts';
import { type ProcessLimits, processImage } from './image/process.ts';

export interface ProcessingDeps {
  moves: StatusMoves;
  sharedFiles: SharedFileRecords;
  objects: ObjectStore;
  uploadPrefix: string;
  variantsBucket: string;
  specs: readonly VariantSpec[];
  limits: ProcessLimits;
  maxBytes: number;
  logger: {
    info(message: string, ...extra: unknown[]): void;
    warn(message: string, ...extra: unknown[]): void;
    error(message: string, ...extra: unknown[]): void;
  };
}

/** What became of one uploaded object. `skipped`: nothing to do (duplicate event, unknown key). */
export type ProcessResult = 'ready' | 'failed' | 'skipped';

/** Records that an object landed and waits in the queue (`pending` -> `uploaded`). */
export async function markLanded(deps: ProcessingDeps, object: CreatedObject): Promise<void> {
  const ids = parseUploadKey(deps.uploadPrefix, object.key);
  if (ids) await deps.moves.advance(ids, 'uploaded', { landedAt: object.eventTime });
}

/**
 * Makes the variants of one uploaded image and records the outcome. A file that can never succeed
 * ends `failed`; anything else (storage or database trouble) is thrown, for the queue to retry.
 */
export async function processUpload(deps: ProcessingDeps, object: CreatedObject): Promise<ProcessResult> {
  const ids = parseUploadKey(deps.uploadPrefix, object.key);
  if (!ids) {
    deps.logger.warn('Ignoring an object the pipeline did not name', { key: object.key });
    return 'skipped';
  }
  const started = await deps.moves.advance(ids, 'processing', { landedAt: object.eventTime });
  if (!started.applied) {
    // Deleted, never issued, or already final: a duplicate or late event changes nothing.
    deps.logger.info('Nothing to do for this event', { ...ids, reason: started.reason });
    return 'skipped';
  }
  const outcome = await makeVariants(deps, object, started.item);
  const done = await deps.moves.settle(ids, outcome.outcome);
  if (done.applied && outcome.outcome.status === 'ready') {
    // Processed originals are kept; only untouched uploads expire through the lifecycle rule.
    await deps.objects.tag(object.bucket, object.key, PROCESSED_TAGS);
    if (started.item.sha256) {
      // The first ready image with this checksum lends its files to later uploads of the same bytes.
      await deps.sharedFiles.offer(started.item.owner, {
        sha256: started.item.sha256,
        imageId: started.item.imageId,
        key: started.item.key,
        ...outcome.outcome.facts,
      });
    }
  } else if (!done.applied && done.reason === 'missing' && outcome.written.length > 0) {
    // The image was deleted while it was processed: leave nothing of it behind.
    await deps.objects.delete(deps.variantsBucket, outcome.written);
  }
  return outcome.outcome.status === 'ready' ? 'ready' : 'failed';
}

const failed = (code: FailureInfo['code'], message: string) => ({
  outcome: { status: 'failed', error: { code, message } } as Outcome,
  written: [] as string[],
});

async function makeVariants(
  deps: ProcessingDeps,
  object: CreatedObject,
  image: ImageItem,
): Promise<{ outcome: Outcome; written: string[] }> {
  let stored: StoredObject;
  try {
    stored = await deps.objects.get(object.bucket, object.key, deps.maxBytes);
  } catch (error) {
    if (error instanceof ObjectTooLargeError) {
      return failed('TooLarge', `The file is over the ${deps.maxBytes}-byte limit.`);
    }
    if (error instanceof ObjectNotFoundError) {
      return failed('ProcessingFailed', 'The uploaded file was removed before it was processed.');
    }
    throw error;
  }
  if (stored.size !== image.size) {
    return failed(
      stored.size > image.size ? 'TooLarge' : 'CorruptImage',
      `The stored file is ${stored.size} bytes, but ${image.size} were declared.`,
    );
  }
  if (image.sha256 && createHash('sha256').update(stored.body).digest('hex') !== image.sha256) {
    return failed('ChecksumMismatch', 'The stored file does not match the sha256 given for it.');
  }
  let processed: Awaited<ReturnType<typeof processImage>>;
  try {
    processed = await processImage(stored.body, deps.specs, deps.limits);
  } catch (error) {
    if (error instanceof ImageError) return failed(error.code, error.message);
    throw error;
  }
  const variants: VariantRecord[] = await Promise.all(
    processed.variants.map(async (variant) => {
      const key = variantKey(image.imageId, variant);
      await deps.objects.put(deps.variantsBucket, key, variant.body, variant.contentType);
      const { name, format, width, height, size } = variant;
      return { name, format, width, height, size, key };
    }),
  );
  const { width, height, format, placeholder } = processed;
  return {
    outcome: { status: 'ready', facts: { width, height, format, placeholder, variants } },
    written: variants.map((v) => v.key),
  };
}
