import { createHash } from 'node:crypto';
import type { Outcome, StatusMoves } from '../shared/fate/moves.ts';
import type { CreatedObject } from '../shared/notify/s3-events.ts';
import type { SharedFileRecords } from '../shared/records/ports.ts';
import type { FailureInfo, ImageItem, VariantRecord } from '../shared/records/types.ts';
import { ObjectNotFoundError, ObjectTooLargeError } from '../shared/storage/errors.ts';
import {
  imageFolder,
  KEPT_ORIGINAL_TAG,
  originalKey,
  outputFolder,
  parseUploadKey,
  variantKey,
} from '../shared/storage/object-keys.ts';
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
 *
 * An upload URL stores at most one set of bytes. The upload key is only an inbox: what a ready
 * image is made of (its original and variants) is written under a folder named after the bytes
 * that were read, the record names that folder, and the inbox is emptied. Bytes that arrive once
 * the image is final or deleted are removed; files of an attempt that lost the race to settle are
 * removed; so the record, the kept original and the variants always describe the same bytes,
 * whatever the order of PUTs, notifications and retries.
 */
export async function processUpload(deps: ProcessingDeps, object: CreatedObject): Promise<ProcessResult> {
  const ids = parseUploadKey(deps.uploadPrefix, object.key);
  if (!ids) {
    deps.logger.warn('Ignoring an object the pipeline did not name', { key: object.key });
    return 'skipped';
  }
  // The bytes are read while the status moves: both are round trips, neither needs the other, and a
  // refused move (a duplicate or late event, a deleted image) only wastes the read.
  const reading = readUpload(deps, object);
  const started = await deps.moves
    .advance(ids, 'processing', { landedAt: object.eventTime })
    .catch(async (error: unknown) => {
      await reading;
      throw error;
    });
  if (!started.applied) {
    await reading;
    // Deleted, never issued, or already final: a duplicate or late event changes nothing, and
    // bytes PUT after the image was settled or deleted are not kept.
    deps.logger.info('Nothing to do for this event', { ...ids, reason: started.reason });
    if (started.reason === 'missing' || keepsNothingAtUploadKey(started.item)) {
      await deps.objects.delete(object.bucket, [object.key]);
    }
    return 'skipped';
  }
  const made = await makeVariants(deps, object, started.item, await reading);
  const done = await deps.moves.settle(ids, made.outcome, started.item);
  if (done.applied) {
    if (made.outcome.status === 'ready') {
      // The bytes are kept with their variants; the inbox (and whatever a later PUT put there) is
      // emptied, with any files an earlier, interrupted attempt left in the image's folder.
      // Only an earlier attempt (`attempts` counts them) can have left files there. The first
      // ready image with a checksum lends its files to later uploads of the same bytes. The three
      // are independent and each can be repeated, so they run at once.
      const { sha256, owner, imageId, key } = started.item;
      await Promise.all([
        deps.objects.delete(object.bucket, [object.key]),
        (started.item.attempts ?? 0) > 1 ? removeOthers(deps, imageId, made.written) : undefined,
        sha256 ? deps.sharedFiles.offer(owner, { sha256, imageId, key, ...made.outcome.facts }) : undefined,
      ]);
    } else if (made.written.length > 0) {
      // Bytes that are not an image were kept while they were tried; now nothing names them.
      await deps.objects.delete(deps.variantsBucket, made.written);
    }
  } else if (made.written.length > 0) {
    // Deleted meanwhile, or settled by another attempt (another PUT, a duplicate event): leave none
    // of this attempt's files behind, unless they are the ones the record names (same bytes).
    const kept = new Set(done.reason === 'stale' ? filesOf(done.item) : []);
    await deps.objects.delete(
      deps.variantsBucket,
      made.written.filter((key) => !kept.has(key)),
    );
  }
  if (!done.applied && keepsNothingAtUploadKey(done.reason === 'stale' ? done.item : undefined)) {
    await deps.objects.delete(object.bucket, [object.key]);
  }
  return made.outcome.status === 'ready' ? 'ready' : 'failed';
}

/**
 * Whether nothing at an image's upload key is worth keeping: the image is gone (`undefined`), or
 * final with its original kept elsewhere, or final without bytes that matter. Images made ready
 * before originals were kept beside their variants still use the upload key.
 */
function keepsNothingAtUploadKey(item: ImageItem | undefined): boolean {
  if (!item) return true;
  if (item.status === 'ready') return item.originalKey !== undefined;
  return item.status === 'expired' || item.status === 'failed';
}

const filesOf = (item: ImageItem) => [
  ...(item.variants ?? []).map((variant) => variant.key),
  ...(item.originalKey ? [item.originalKey] : []),
];

/** Removes every file in the image's folder but these. */
async function removeOthers(deps: ProcessingDeps, imageId: string, keep: readonly string[]): Promise<void> {
  const kept = new Set(keep);
  const stray: string[] = [];
  for await (const key of deps.objects.list(deps.variantsBucket, imageFolder(imageId))) {
    if (!kept.has(key)) stray.push(key);
  }
  if (stray.length > 0) await deps.objects.delete(deps.variantsBucket, stray);
}

/**
 * Keeps the bytes that were read beside their variants: copied inside the store when the upload
 * still holds them (its ETag unchanged), so they are not sent back up; written from memory when a
 * later PUT replaced them meanwhile.
 */
async function keepOriginal(
  deps: ProcessingDeps,
  object: CreatedObject,
  stored: StoredObject,
  key: string,
  contentType: string,
): Promise<void> {
  const copied =
    stored.etag !== undefined &&
    (await deps.objects.copyIfUnchanged(
      { bucket: object.bucket, key: object.key, etag: stored.etag },
      { bucket: deps.variantsBucket, key },
      contentType,
      KEPT_ORIGINAL_TAG,
    ));
  if (!copied) await deps.objects.put(deps.variantsBucket, key, stored.body, contentType, KEPT_ORIGINAL_TAG);
}

const failed = (code: FailureInfo['code'], message: string) => ({
  outcome: { status: 'failed', error: { code, message } } as Outcome,
  written: [] as string[],
});

/** The upload's bytes, or why they could not be read; never rejects, so it can wait beside other work. */
type Read = { stored: StoredObject } | { error: unknown };

const readUpload = (deps: ProcessingDeps, object: CreatedObject): Promise<Read> =>
  deps.objects.get(object.bucket, object.key, deps.maxBytes).then(
    (stored) => ({ stored }),
    (error: unknown) => ({ error }),
  );

async function makeVariants(
  deps: ProcessingDeps,
  object: CreatedObject,
  image: ImageItem,
  read: Read,
): Promise<{ outcome: Outcome; written: string[] }> {
  if ('error' in read) {
    if (read.error instanceof ObjectTooLargeError) {
      return failed('TooLarge', `The file is over the ${deps.maxBytes}-byte limit.`);
    }
    if (read.error instanceof ObjectNotFoundError) {
      return failed('ProcessingFailed', 'The uploaded file was removed before it was processed.');
    }
    throw read.error;
  }
  const { stored } = read;
  if (stored.size !== image.size) {
    return failed(
      stored.size > image.size ? 'TooLarge' : 'CorruptImage',
      `The stored file is ${stored.size} bytes, but ${image.size} were declared.`,
    );
  }
  const sha256 = createHash('sha256').update(stored.body).digest('hex');
  if (image.sha256 && sha256 !== image.sha256) {
    return failed('ChecksumMismatch', 'The stored file does not match the sha256 given for it.');
  }
  // Everything made from these bytes, and the bytes themselves, go in one folder named after them.
  const folder = outputFolder(image.imageId, sha256);
  const original = originalKey(folder);
  // The bytes are kept while the variants are made: the copy needs none of them, and bytes that turn
  // out not to be an image only cost removing the copy again. Settled before anything is returned or
  // thrown, so no write outlives the attempt.
  const keeping = keepOriginal(deps, object, stored, original, stored.contentType ?? image.type).then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  let processed: Awaited<ReturnType<typeof processImage>>;
  try {
    processed = await processImage(stored.body, deps.specs, deps.limits);
  } catch (error) {
    const keptFailure = await keeping;
    if (!(error instanceof ImageError)) throw error;
    // The copy is removed once the image is settled (processUpload): until then another attempt at
    // the same bytes may still make them ready, in this same folder.
    return { ...failed(error.code, error.message), written: keptFailure ? [] : [original] };
  }
  const [variants, keptFailure] = await Promise.all([
    Promise.allSettled(
      processed.variants.map(async (variant): Promise<VariantRecord> => {
        const key = variantKey(folder, variant);
        await deps.objects.put(deps.variantsBucket, key, variant.body, variant.contentType);
        const { name, format, width, height, size } = variant;
        return { name, format, width, height, size, key };
      }),
    ),
    keeping,
  ]);
  if (keptFailure) throw keptFailure.error;
  const written: VariantRecord[] = [];
  for (const result of variants) {
    if (result.status === 'rejected') throw result.reason;
    written.push(result.value);
  }
  const { width, height, format, placeholder } = processed;
  return {
    outcome: {
      status: 'ready',
      facts: { width, height, format, placeholder, variants: written, originalKey: original },
    },
    written: [...written.map((v) => v.key), original],
  };
}
