import { isId } from '../../shared/ids.ts';
import type { ImageRecords, ObjectStore, UrlSigner } from '../../shared/records/ports.ts';
import { FINAL_STATUSES, type ItemStatus } from '../../shared/records/types.ts';
import { ApiError, notFound } from '../errors.ts';
import {
  effectiveStatus,
  type ImageView,
  type ItemView,
  itemState,
  toImageView,
  toItemView,
  weakEtag,
} from './views.ts';

export interface StatusDeps {
  records: ImageRecords;
  signer: UrlSigner;
  objects: ObjectStore;
  uploadBucket: string;
  variantsBucket: string;
  /** Every configured variant's key suffix (`<name>.<ext>`), to delete what a late write may leave. */
  variantFileNames: readonly string[];
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

async function ownedImage(deps: StatusDeps, owner: string, imageId: string) {
  // Another owner's image answers exactly as a missing one does.
  const item = isId(imageId) ? await deps.records.getImage(imageId) : undefined;
  if (!item || item.owner !== owner) throw notFound('Image');
  return item;
}

export async function getImage(deps: StatusDeps, owner: string, imageId: string): Promise<Tagged<ImageView>> {
  const item = await ownedImage(deps, owner, imageId);
  const now = clock(deps);
  return { etag: weakEtag([itemState(item, now)]), render: () => toImageView(item, now, variantUrl(deps)) };
}

export interface BatchView {
  batchId: string;
  total: number;
  counts: Record<ItemStatus, number>;
  complete: boolean;
  expiresAt: string;
  items: ItemView[];
  nextCursor?: string;
}

export interface PageRequest {
  limit?: string | undefined;
  cursor?: string | undefined;
}

export async function getBatch(
  deps: StatusDeps,
  owner: string,
  batchId: string,
  page: PageRequest,
): Promise<Tagged<BatchView>> {
  const limit = parseLimit(page.limit);
  const after = page.cursor === undefined ? undefined : parseCursor(page.cursor);
  const found = isId(batchId) ? await deps.records.getBatch(batchId) : undefined;
  if (!found || found.batch.owner !== owner) throw notFound('Batch');

  const now = clock(deps);
  const counts: Record<ItemStatus, number> = {
    pending: 0,
    uploaded: 0,
    processing: 0,
    ready: 0,
    failed: 0,
    rejected: 0,
    expired: 0,
  };
  for (const item of found.items) counts[effectiveStatus(item, now)]++;
  const start = after === undefined ? 0 : found.items.findIndex((item) => item.itemId > after);
  const pageItems = start < 0 ? [] : found.items.slice(start, start + limit);
  const last = pageItems.at(-1);
  const nextCursor =
    last && found.items.at(-1)?.itemId !== last.itemId
      ? Buffer.from(last.itemId).toString('base64url')
      : undefined;
  const complete =
    found.items.length > 0 && found.items.every((item) => FINAL_STATUSES.has(effectiveStatus(item, now)));
  // The tag covers the whole batch (its counts) and this page's position in it.
  const etag = weakEtag([String(limit), after ?? '', ...found.items.map((item) => itemState(item, now))]);

  return {
    etag,
    render: async () => ({
      batchId: found.batch.batchId,
      total: found.items.length,
      counts,
      complete,
      expiresAt: found.batch.expiresAt,
      items: await Promise.all(pageItems.map((item) => toItemView(item, now, variantUrl(deps)))),
      ...(nextCursor ? { nextCursor } : {}),
    }),
  };
}

/**
 * Removes the record, then the original and every variant. Files shared with duplicates stay until
 * the last image using them is deleted. The record goes first: a retry after a crash finds nothing
 * (404) rather than releasing shared files twice; at worst files are left behind, never lost early.
 */
export async function deleteImage(deps: StatusDeps, owner: string, imageId: string): Promise<void> {
  const item = await ownedImage(deps, owner, imageId);
  if (!(await deps.records.deleteImage(item.batchId, item.imageId))) throw notFound('Image');

  if (item.sha256 && item.status === 'ready') {
    const shared = await deps.records.getSharedFiles(owner, item.sha256);
    const usesShared = shared && (shared.imageId === item.imageId || shared.imageId === item.duplicateOf);
    if (usesShared && (await deps.records.releaseSharedFiles(owner, item.sha256)) > 0) return;
  }
  const filesOf = item.duplicateOf ?? item.imageId;
  const variantKeys = new Set([
    ...(item.variants ?? []).map((v) => v.key),
    ...deps.variantFileNames.map((file) => `${filesOf}/${file}`),
  ]);
  await Promise.all([
    deps.objects.delete(deps.uploadBucket, [item.key]),
    deps.objects.delete(deps.variantsBucket, [...variantKeys]),
  ]);
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_PAGE_SIZE;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new ApiError('InvalidRequest', `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}.`);
  }
  return limit;
}

function parseCursor(raw: string): string {
  const itemId = Buffer.from(raw, 'base64url').toString();
  if (!isId(itemId))
    throw new ApiError('InvalidRequest', 'cursor is not one this API returned; omit it to start over.');
  return itemId;
}
