import { createHash } from 'node:crypto';
import type { ImageView, ItemStatus, ItemView } from '../../../contract/index.ts';
import type { BatchItem, ImageItem } from '../../shared/records/types.ts';

/** `expired` is read, not stored: a pending image whose upload URL ran out with nothing uploaded. */
export function effectiveStatus(item: ImageItem, now: Date): ImageView['status'];
export function effectiveStatus(item: BatchItem, now: Date): ItemStatus;
export function effectiveStatus(item: BatchItem, now: Date): ItemStatus {
  if (item.status === 'pending' && Date.parse(item.uploadExpiresAt) <= now.getTime()) return 'expired';
  return item.status;
}

/** The parts of an item a client can see change; URLs are left out since they are re-signed hourly. */
export function itemState(item: BatchItem, now: Date): string {
  return `${item.itemId}:${effectiveStatus(item, now)}:${item.updatedAt}`;
}

export const weakEtag = (parts: readonly string[]) =>
  `W/"${createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 32)}"`;

/** Whether an `If-None-Match` header names the current tag (weak comparison, as for GET). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  const strip = (tag: string) => tag.trim().replace(/^W\//, '');
  const current = strip(etag);
  return ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || strip(tag) === current);
}

/** Presigns the variant URLs of one image. */
export type VariantUrlFn = (key: string) => Promise<string>;

export async function toItemView(item: BatchItem, now: Date, variantUrl: VariantUrlFn): Promise<ItemView> {
  if (item.status === 'rejected') {
    return {
      index: item.index,
      name: item.name,
      status: 'rejected',
      createdAt: item.createdAt,
      error: item.error,
    };
  }
  return toImageView(item, now, variantUrl);
}

export async function toImageView(item: ImageItem, now: Date, variantUrl: VariantUrlFn): Promise<ImageView> {
  const status = effectiveStatus(item, now);
  const view: ImageView = {
    imageId: item.imageId,
    batchId: item.batchId,
    index: item.index,
    name: item.name,
    status,
    type: item.type,
    size: item.size,
    createdAt: item.createdAt,
    updatedAt: item.updatedAt,
  };
  if (item.width !== undefined && item.height !== undefined) {
    view.width = item.width;
    view.height = item.height;
  }
  if (item.format !== undefined) view.format = item.format;
  if (item.placeholder !== undefined) view.placeholder = item.placeholder;
  if (status === 'ready' && item.variants) {
    view.variants = await Promise.all(
      item.variants.map(async ({ key, ...variant }) => ({ ...variant, url: await variantUrl(key) })),
    );
  }
  if (status === 'failed' && item.error) view.error = item.error;
  if (item.duplicateOf !== undefined) view.duplicateOf = item.duplicateOf;
  return view;
}
