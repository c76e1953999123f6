/**
 * What the use cases need of the records; adapters in this folder implement them over DynamoDB.
 * Status changes are not here: they go through `fate/moves.ts`, the one place that moves an image.
 */
import type { BatchItem, BatchRecord, ImageItem, ReadyFacts } from './types.ts';

/** Batches and their items, as created and as read. */
export interface BatchRecords {
  /** Writes the batch and its items, with the events of items that are final from the start. */
  createBatch(batch: BatchRecord, items: readonly BatchItem[]): Promise<void>;
  getBatch(batchId: string): Promise<BatchRecord | undefined>;
  /** One page of a batch's items in request order, after the item `afterItemId`. */
  listItems(
    batchId: string,
    page: { limit: number; afterItemId?: string | undefined },
  ): Promise<{ items: BatchItem[]; more: boolean }>;
}

/** Images found by id, and unfinished ones found by age. */
export interface ImageRecords {
  getImage(imageId: string): Promise<ImageItem | undefined>;
  getImageByKey(batchId: string, imageId: string): Promise<ImageItem | undefined>;
  /** Unfinished images (pending, uploaded, processing) whose last change is older than the time. */
  listStale(updatedBefore: string): AsyncIterable<ImageItem>;
}

/** Files of a ready image that later uploads of the same bytes (same owner) reuse. */
export interface SharedFiles extends ReadyFacts {
  sha256: string;
  /** The image whose processing made the files. */
  imageId: string;
  /** Its original in the upload bucket. */
  key: string;
  /** How many images use these files. */
  refs: number;
}

/** Dedup by checksum: which files an owner already has, and how many images use them. */
export interface SharedFileRecords {
  /** The files of the owner's ready images with these checksums, by checksum. */
  find(owner: string, sha256s: readonly string[]): Promise<Map<string, SharedFiles>>;
  /** Offers a new ready image's files for reuse; the first image with a checksum wins. */
  offer(owner: string, files: Omit<SharedFiles, 'refs'>): Promise<void>;
  /** Counts `count` more images using the shared files; false when they are gone. */
  retain(owner: string, sha256: string, count: number): Promise<boolean>;
  /** One image fewer uses the files of `imageId`; returns how many still do (0: delete the files). */
  release(owner: string, sha256: string, imageId: string): Promise<number | undefined>;
}

export type RateVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** Per-owner limits that protect the service and its other users. */
export interface Quotas {
  /** Counts one request in the current window of `windowSeconds`; refuses past `limit`. */
  hit(owner: string, limit: number, windowSeconds: number): Promise<RateVerdict>;
  /** Upload URLs issued to the owner and still open (unused and unexpired), and when the next runs out. */
  openUploads(owner: string): Promise<{ count: number; nextExpiry: string | undefined }>;
}
