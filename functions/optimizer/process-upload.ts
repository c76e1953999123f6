import { createHash } from 'node:crypto';
import type { ImageRecords, ObjectStore, StoredObject } from '../shared/records/ports.ts';
import type { ErrorInfo, ImageItem, VariantRecord } from '../shared/records/types.ts';
import { ObjectNotFoundError, ObjectTooLargeError } from '../shared/storage/errors.ts';
import { variantKey } from '../shared/storage/object-keys.ts';
import type { VariantSpec } from '../shared/variants.ts';
import { ImageError } from './image/errors.ts';
import { type ProcessLimits, processImage } from './image/process.ts';

export interface ProcessingDeps {
  records: ImageRecords;
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

export interface UploadedObject {
  bucket: string;
  /** The object key, decoded (not as S3 events carry it). */
  key: string;
}

/** What became of one uploaded object. `skipped`: nothing to do (duplicate event, unknown key). */
export type Outcome = 'ready' | 'failed' | 'skipped';

/** Tags of an original that became variants (the upload bucket expires `pipeline-state=incoming`). */
export const PROCESSED_TAGS = { 'pipeline-state': 'processed' } as const;

/** The part of an upload key the pipeline built: `<prefix><batchId>/<imageId>`. */
export function parseUploadKey(
  prefix: string,
  key: string,
): { batchId: string; imageId: string } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const match = /^([0-9A-Z]{26})\/([0-9A-Z]{26})$/.exec(key.slice(prefix.length));
  return match?.[1] && match[2] ? { batchId: match[1], imageId: match[2] } : undefined;
}

/** Records that an object landed and waits in the queue (`pending` -> `uploaded`). */
export async function markLanded(deps: ProcessingDeps, object: UploadedObject): Promise<void> {
  const ids = parseUploadKey(deps.uploadPrefix, object.key);
  if (ids) await deps.records.advance(ids.batchId, ids.imageId, 'uploaded');
}

/**
 * Makes the variants of one uploaded image and records the outcome. A file that can never succeed
 * ends `failed`; anything else (storage or database trouble) is thrown, for the queue to retry.
 */
export async function processUpload(deps: ProcessingDeps, object: UploadedObject): Promise<Outcome> {
  const ids = parseUploadKey(deps.uploadPrefix, object.key);
  if (!ids) {
    deps.logger.warn('Ignoring an object the pipeline did not name', { key: object.key });
    return 'skipped';
  }
  const started = await deps.records.advance(ids.batchId, ids.imageId, 'processing');
  if (!started.applied) {
    // Deleted, never issued, or already final: a duplicate or late event changes nothing.
    deps.logger.info('Nothing to do for this event', { ...ids, reason: started.reason });
    return 'skipped';
  }
  const image = started.item;
  const failure = await makeVariants(deps, object, image);
  if (failure) {
    await deps.records.markFailed(ids.batchId, ids.imageId, failure);
    return 'failed';
  }
  return 'ready';
}

async function makeVariants(
  deps: ProcessingDeps,
  object: UploadedObject,
  image: ImageItem,
): Promise<ErrorInfo | undefined> {
  let stored: StoredObject;
  try {
    stored = await deps.objects.get(object.bucket, object.key, deps.maxBytes);
  } catch (error) {
    if (error instanceof ObjectTooLargeError) {
      return { code: 'TooLarge', message: `The file is over the ${deps.maxBytes}-byte limit.` };
    }
    if (error instanceof ObjectNotFoundError) {
      return { code: 'ProcessingFailed', message: 'The uploaded file was removed before it was processed.' };
    }
    throw error;
  }
  if (stored.size !== image.size) {
    return {
      code: stored.size > image.size ? 'TooLarge' : 'CorruptImage',
      message: `The stored file is ${stored.size} bytes, but ${image.size} were declared.`,
    };
  }
  if (image.sha256 && createHash('sha256').update(stored.body).digest('hex') !== image.sha256) {
    return { code: 'ChecksumMismatch', message: 'The stored file does not match the sha256 given for it.' };
  }
  let processed: Awaited<ReturnType<typeof processImage>>;
  try {
    processed = await processImage(stored.body, deps.specs, deps.limits);
  } catch (error) {
    if (error instanceof ImageError) return { code: error.code, message: error.message };
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
  const done = await deps.records.markReady(image, {
    width: processed.width,
    height: processed.height,
    format: processed.format,
    placeholder: processed.placeholder,
    variants,
  });
  if (done.applied) {
    // Processed originals are kept; only untouched uploads expire through the lifecycle rule.
    await deps.objects.tag(object.bucket, object.key, PROCESSED_TAGS);
  } else if (done.reason === 'missing') {
    // The image was deleted while it was processed: leave nothing of it behind.
    await deps.objects.delete(
      deps.variantsBucket,
      variants.map((v) => v.key),
    );
  }
  return undefined;
}
