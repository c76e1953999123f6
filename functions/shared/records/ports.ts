/**
 * The small interfaces the use cases need. Adapters in `adapters/` implement them over the AWS SDK;
 * the same use cases then run in Lambda, on the local stack and in tests.
 */

export interface PresignPutRequest {
  bucket: string;
  key: string;
  contentType: string;
  contentLength: number;
  /** The file's SHA-256 as 64 hex characters; when given, storage refuses other bytes. */
  sha256Hex?: string | undefined;
  expiresInSeconds: number;
}

/** What the client must send, exactly: method, URL and every header. */
export interface PresignedUpload {
  method: 'PUT';
  url: string;
  headers: Record<string, string>;
}

export interface UrlSigner {
  /** A URL that accepts one PUT of this key, type, length (and checksum), until it expires. */
  presignPut(request: PresignPutRequest): Promise<PresignedUpload>;
  /** A URL that serves the object to a plain GET for at least `minValiditySeconds`. */
  presignGet(bucket: string, key: string, minValiditySeconds: number): Promise<string>;
}

export interface StoredObject {
  body: Buffer;
  contentType: string | undefined;
  size: number;
}

export interface ObjectHead {
  size: number;
  lastModified: Date;
}

export interface ObjectStore {
  /** Reads a whole object; refuses (without reading it) one larger than `maxBytes`. */
  get(bucket: string, key: string, maxBytes: number): Promise<StoredObject>;
  /** The object's size and age, or `undefined` when there is no such object. */
  head(bucket: string, key: string): Promise<ObjectHead | undefined>;
  /** Replaces the object's tags (the lifecycle rules act on them). */
  tag(bucket: string, key: string, tags: Record<string, string>): Promise<void>;
  put(bucket: string, key: string, body: Buffer, contentType: string): Promise<void>;
  /** Removes the objects; absent keys are not an error. */
  delete(bucket: string, keys: readonly string[]): Promise<void>;
  /** Keys under a prefix, page by page. */
  list(bucket: string, prefix: string): AsyncIterable<string>;
}

import type {
  BatchItem,
  BatchRecord,
  ErrorInfo,
  ImageItem,
  ReadyFacts,
  StoredImageStatus,
  TransitionResult,
} from './types.ts';

/** Enough of an image to address it and to index it for dedup. */
export type ImageRef = Pick<ImageItem, 'batchId' | 'imageId' | 'owner' | 'sha256'>;

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

export interface BatchPage {
  batch: BatchRecord;
  /** Every item of the batch, in request order. */
  items: BatchItem[];
}

/** Persistence of batches and images; every status change is conditional and moves forward only. */
export interface ImageRecords {
  createBatch(batch: BatchRecord, items: readonly BatchItem[]): Promise<void>;
  /** The batch with all its items, or `undefined`. */
  getBatch(batchId: string): Promise<BatchPage | undefined>;
  getImage(imageId: string): Promise<ImageItem | undefined>;
  getImageByKey(batchId: string, imageId: string): Promise<ImageItem | undefined>;
  /** Moves an image to `uploaded` or `processing`; `processing` counts an attempt. */
  advance(
    batchId: string,
    imageId: string,
    to: Extract<StoredImageStatus, 'uploaded' | 'processing'>,
  ): Promise<TransitionResult>;
  markReady(image: ImageRef, facts: ReadyFacts): Promise<TransitionResult>;
  markFailed(batchId: string, imageId: string, error: ErrorInfo): Promise<TransitionResult>;
  /** The files of the owner's ready images with these checksums, by checksum. */
  findDuplicates(owner: string, sha256s: readonly string[]): Promise<Map<string, SharedFiles>>;
  getSharedFiles(owner: string, sha256: string): Promise<SharedFiles | undefined>;
  /** Counts `count` more images using the shared files; false when they are gone. */
  retainSharedFiles(owner: string, sha256: string, count: number): Promise<boolean>;
  /** One image fewer uses the shared files; returns how many still do (0: delete the files). */
  releaseSharedFiles(owner: string, sha256: string): Promise<number>;
  deleteImage(batchId: string, imageId: string): Promise<boolean>;
  /** Unfinished images (pending, uploaded, processing) whose last change is older than the time. */
  listStale(updatedBefore: string): AsyncIterable<ImageItem>;
  /** Marks an image as looked after now, if it is still in this status; false if it moved on. */
  touch(batchId: string, imageId: string, status: StoredImageStatus): Promise<boolean>;
  /** Stops tracking a pending image whose URL ran out (it reads as `expired`); false if it moved on. */
  closeExpired(batchId: string, imageId: string): Promise<boolean>;
}

/** The work queue, as the reconciler uses it. */
export interface WorkQueue {
  /** Queues S3-notification-shaped messages for these uploaded objects. */
  enqueue(objects: readonly { bucket: string; key: string }[]): Promise<void>;
  /** The objects named by messages in the dead-letter queue (left there for operators). */
  deadLetters(max: number): Promise<{ bucket: string; key: string }[]>;
}

export type RateVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** Per-owner limits that protect the service and its other users. */
export interface Quotas {
  /** Counts one request in the current window of `windowSeconds`; refuses past `limit`. */
  hit(owner: string, limit: number, windowSeconds: number): Promise<RateVerdict>;
  /** Upload URLs issued to the owner and still open (unused and unexpired), and when the next runs out. */
  openUploads(owner: string): Promise<{ count: number; nextExpiry: string | undefined }>;
}
