import type { BatchView, ImageView, UploadUrl } from '../../../contract/index.ts';
import type { StatusMoves } from '../../shared/fate/moves.ts';
import { isId } from '../../shared/ids.ts';
import { countsAt } from '../../shared/records/batch-row.ts';
import type { BatchRecords, ImageRecords, Quotas, SharedFileRecords } from '../../shared/records/ports.ts';
import type { ImageItem } from '../../shared/records/types.ts';
import { imageFolder } from '../../shared/storage/object-keys.ts';
import { type ObjectStore, type UrlSigner, uploadWindow } from '../../shared/storage/ports.ts';
import { ApiError, notFound } from '../errors.ts';
import { itemState, toImageView, toItemView, weakEtag } from './views.ts';

export interface StatusDeps {
  batches: BatchRecords;
  images: ImageRecords;
  moves: StatusMoves;
  sharedFiles: SharedFileRecords;
  signer: UrlSigner;
  objects: ObjectStore;
  uploadBucket: string;
  variantsBucket: string;
  uploadUrlTtlSeconds: number;
  /** Per owner: images `pending` at once (an expired image renewed counts again). */
  maxOpenUploads: number;
  quotas: Quotas;
  now?: () => Date;
}

/** A representation whose tag is known before it is built, so that a `304` costs no signing. */
export interface Tagged<T> {
  etag: string;
  render: () => Promise<T>;
}

/** Variant URLs stay fetchable with a plain GET for at least this long. */
export const VARIANT_URL_MIN_VALIDITY_SECONDS = 3600;

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 500;

const clock = (deps: StatusDeps) => (deps.now ?? (() => new Date()))();
const variantUrl = (deps: StatusDeps) => (key: string) =>
  deps.signer.presignGet(deps.variantsBucket, key, VARIANT_URL_MIN_VALIDITY_SECONDS);

async function ownedImage(deps: StatusDeps, owner: string, imageId: string): Promise<ImageItem> {
  // Another owner's image answers exactly as a missing one does.
  const item = isId(imageId) ? await deps.images.getImage(imageId) : undefined;
  if (!item || item.owner !== owner) throw notFound('Image');
  return item;
}

export async function getImage(deps: StatusDeps, owner: string, imageId: string): Promise<Tagged<ImageView>> {
  const item = await ownedImage(deps, owner, imageId);
  const now = clock(deps);
  return { etag: weakEtag([itemState(item, now)]), render: () => toImageView(item, now, variantUrl(deps)) };
}

export interface PageRequest {
  limit?: string | undefined;
  cursor?: string | undefined;
}

/**
 * A batch's counts (kept on the batch record) and one page of its items. A `304` costs one read of the
 * batch record; a page, that read plus one query of `limit` items.
 */
export async function getBatch(
  deps: StatusDeps,
  owner: string,
  batchId: string,
  page: PageRequest,
): Promise<Tagged<BatchView>> {
  const limit = parseLimit(page.limit);
  const after = page.cursor === undefined ? undefined : parseCursor(page.cursor);
  const batch = isId(batchId) ? await deps.batches.getBatch(batchId) : undefined;
  if (!batch || batch.owner !== owner) throw notFound('Batch');

  const now = clock(deps);
  const { counts, complete } = countsAt(batch, now);
  // Every change to the batch's items bumps its version; the clock can only turn pending to expired.
  const etag = weakEtag([String(batch.version), String(counts.expired), String(limit), after ?? '']);

  return {
    etag,
    render: async () => {
      const { items, more } = await deps.batches.listItems(batchId, { limit, afterItemId: after });
      const last = items.at(-1);
      return {
        batchId: batch.batchId,
        total: batch.total,
        counts,
        complete,
        expiresAt: batch.expiresAt,
        items: await Promise.all(items.map((item) => toItemView(item, now, variantUrl(deps)))),
        ...(more && last ? { nextCursor: encodeCursor(last.itemId) } : {}),
      };
    },
  };
}

/**
 * Takes the image out of its batch, then removes the original and every variant. Files shared with
 * duplicates stay until the last image using them is deleted. The record goes first: a retry after a
 * crash finds nothing (404) rather than releasing shared files twice; at worst files are left behind,
 * never lost early.
 */
export async function deleteImage(deps: StatusDeps, owner: string, imageId: string): Promise<void> {
  const found = await ownedImage(deps, owner, imageId);
  const item = await deps.moves.remove(found);
  if (!item) throw notFound('Image');

  const filesOf = item.duplicateOf ?? item.imageId;
  if (item.sha256 && item.status === 'ready') {
    const stillUsed = await deps.sharedFiles.release(owner, item.sha256, filesOf);
    if (stillUsed !== undefined && stillUsed > 0) return;
  }
  // The image's folder holds its kept original and variants, and whatever a late or losing attempt
  // wrote; the upload key holds bytes not yet processed (or put there after). An optimizer still at
  // work finds the record gone and removes what it writes after this.
  await Promise.all([
    deps.objects.delete(deps.uploadBucket, [item.key]),
    deps.objects.deleteUnder(deps.variantsBucket, imageFolder(filesOf)),
  ]);
}

/** A fresh upload URL for an image whose bytes have not landed (it reads `pending` or `expired`). */
export async function renewUpload(deps: StatusDeps, owner: string, imageId: string): Promise<UploadUrl> {
  const item = await ownedImage(deps, owner, imageId);
  const alreadyUploaded = () =>
    new ApiError('AlreadyUploaded', 'The bytes of this image have landed already; nothing to upload again.');
  if (item.status !== 'pending' && item.status !== 'expired') throw alreadyUploaded();
  // Landed, but the pipeline has not heard of it yet.
  if (await deps.objects.head(deps.uploadBucket, item.key)) throw alreadyUploaded();

  const now = clock(deps);
  const { signedAt, expiresAt } = uploadWindow(now, deps.uploadUrlTtlSeconds);
  let moved = await deps.moves.reopen(item, expiresAt, deps.maxOpenUploads);
  if (!moved.applied && moved.reason === 'quota') {
    // The counter may still hold uploads whose URLs ran out: reserve against what is really open,
    // then reopen past the counter's own limit, and hand the reservation back (the image holds one now).
    const reservation = await deps.quotas.reserveUploads(owner, 1, deps.maxOpenUploads);
    if (!reservation.reserved) {
      throw new ApiError(
        'QuotaExceeded',
        `You have ${reservation.open} unfinished uploads, the limit; upload or abandon some first.`,
        { retryAfter: reservation.retryAfterSeconds },
      );
    }
    try {
      moved = await deps.moves.reopen(item, expiresAt, Number.MAX_SAFE_INTEGER);
    } finally {
      await deps.quotas.releaseUploads(owner, 1);
    }
  }
  if (!moved.applied) throw moved.reason === 'missing' ? notFound('Image') : alreadyUploaded();
  const upload = await deps.signer.presignPut({
    bucket: deps.uploadBucket,
    key: item.key,
    contentType: item.type,
    contentLength: item.size,
    sha256Hex: item.sha256,
    expiresInSeconds: deps.uploadUrlTtlSeconds,
    signedAt,
  });
  return { imageId: item.imageId, expiresAt, upload };
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_PAGE_SIZE;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new ApiError('InvalidRequest', `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}.`);
  }
  return limit;
}

/** The opaque `nextCursor` of a page that ends with this item. */
export const encodeCursor = (itemId: string) => Buffer.from(itemId).toString('base64url');

/**
 * The item a cursor points after. Anything but a cursor this API returned is `400 InvalidRequest`;
 * the work is bounded (a cursor is 36 characters, so longer strings are not decoded).
 */
export function parseCursor(raw: string): string {
  const itemId = raw.length <= 64 ? Buffer.from(raw, 'base64url').toString() : '';
  if (!isId(itemId))
    throw new ApiError('InvalidRequest', 'cursor is not one this API returned; omit it to start over.');
  return itemId;
}
