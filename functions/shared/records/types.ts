import type { ImageFailureCode } from '../../optimizer/image/errors.ts';
import type { VariantFormat } from '../variants.ts';

/** An image's life: it never moves backwards (see `STATUS_RANK`). */
export type ImageStatus = 'pending' | 'uploaded' | 'processing' | 'ready' | 'failed' | 'expired';
/** A batch item is an image, or a file refused at the edge. */
export type ItemStatus = ImageStatus | 'rejected';

export const FINAL_STATUSES: ReadonlySet<ItemStatus> = new Set(['ready', 'failed', 'rejected', 'expired']);

/** Order of the stored statuses; a write only succeeds when it moves an image forward. */
export const STATUS_RANK = { pending: 0, uploaded: 1, processing: 2, ready: 3, failed: 3 } as const;
export type StoredImageStatus = keyof typeof STATUS_RANK;

/** Codes an image can fail with: the image core's, plus those the pipeline itself finds. */
export type FailureCode = ImageFailureCode | 'TooLarge' | 'ChecksumMismatch' | 'ProcessingFailed';

export interface ErrorInfo {
  code: string;
  message: string;
}

export interface VariantRecord {
  name: string;
  format: VariantFormat;
  width: number;
  height: number;
  size: number;
  key: string;
}

interface ItemBase {
  batchId: string;
  /** The sort key's id: the imageId for images, an internal id for rejected files. */
  itemId: string;
  index: number;
  owner: string;
  name: string;
  createdAt: string;
  updatedAt: string;
}

export interface RejectedItem extends ItemBase {
  status: 'rejected';
  error: ErrorInfo;
}

export interface ImageItem extends ItemBase {
  status: StoredImageStatus;
  imageId: string;
  type: string;
  size: number;
  sha256?: string | undefined;
  /** Object key of the original in the upload bucket. */
  key: string;
  /** When the upload URL runs out. */
  uploadExpiresAt: string;
  /** How many times processing has started. */
  attempts?: number;
  width?: number;
  height?: number;
  format?: string;
  placeholder?: string;
  variants?: VariantRecord[];
  error?: ErrorInfo;
  duplicateOf?: string;
}

export type BatchItem = ImageItem | RejectedItem;

export interface BatchRecord {
  batchId: string;
  owner: string;
  createdAt: string;
  /** When the batch's upload URLs run out. */
  expiresAt: string;
}

/** Facts the optimizer found, stored when an image becomes ready. */
export interface ReadyFacts {
  width: number;
  height: number;
  format: string;
  placeholder: string;
  variants: VariantRecord[];
}

/** Whether a transition was applied, or why not. */
export type TransitionResult =
  | { applied: true; item: ImageItem }
  | { applied: false; reason: 'missing' }
  | { applied: false; reason: 'stale'; item: ImageItem };
