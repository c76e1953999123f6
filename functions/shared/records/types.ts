import type { ErrorInfo, FailureCode, ImageStatus } from '../../../contract/index.ts';
import type { VariantFormat } from '../variants.ts';

export type { ErrorInfo, FailureCode, ImageStatus, ItemStatus } from '../../../contract/index.ts';
export { FINAL_STATUSES } from '../../../contract/index.ts';

/**
 * Order of the stored statuses; a write only succeeds when it moves an image forward. `expired` is
 * stored once the reconciler settles an image whose URL ran out (until then it is read from the clock).
 */
export const STATUS_RANK = {
  pending: 0,
  uploaded: 1,
  processing: 2,
  ready: 3,
  failed: 3,
  expired: 3,
} as const satisfies Record<ImageStatus, number>;
export type StoredImageStatus = keyof typeof STATUS_RANK;

/** An image's failure as stored: one of the contract's codes. */
export interface FailureInfo extends ErrorInfo {
  code: FailureCode;
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
  /** When the pipeline learnt that the bytes landed (`uploaded`). */
  landedAt?: string;
  /** When the last processing attempt started. */
  startedAt?: string;
  width?: number;
  height?: number;
  format?: string;
  placeholder?: string;
  variants?: VariantRecord[];
  /** Once ready: the kept original in the variants bucket (see `ReadyFacts`). */
  originalKey?: string;
  error?: ErrorInfo;
  duplicateOf?: string;
}

export type BatchItem = ImageItem | RejectedItem;

/** Counts of a batch's items by stored status (`expired` once the reconciler settled it). */
export type StoredCounts = Record<StoredImageStatus | 'rejected', number>;

export interface BatchRecord {
  batchId: string;
  owner: string;
  createdAt: string;
  /** When the batch's first upload URLs run out. */
  expiresAt: string;
  /** Items in the batch (deleted images leave it). */
  total: number;
  /** Items in a final state. */
  settled: number;
  counts: StoredCounts;
  /** When the last of its upload URLs runs out; past it, every stored `pending` item reads `expired`. */
  pendingUntil: string;
  /** Grows with every change to the batch or its items' statuses: the batch's ETag. */
  version: number;
  /** When the batch last became complete (a renewed upload URL can open it again). */
  completedAt?: string;
  /** How many times it became complete: the batch.completed event's sequence number. */
  completions?: number;
  callbackUrl?: string;
}

/** Facts the optimizer found, stored when an image becomes ready. */
export interface ReadyFacts {
  width: number;
  height: number;
  format: string;
  placeholder: string;
  variants: VariantRecord[];
  /**
   * The kept original in the variants bucket: the bytes the variants were made from. Absent on
   * images made ready before originals were kept there (their original stayed at the upload key).
   */
  originalKey?: string;
}

/** Just the ready facts of a wider record (no `originalKey` key when there is none). */
export function readyFacts(source: ReadyFacts): ReadyFacts {
  const { width, height, format, placeholder, variants, originalKey } = source;
  return { width, height, format, placeholder, variants, ...(originalKey ? { originalKey } : {}) };
}

/** Whether a transition was applied, or why not. */
export type TransitionResult =
  | { applied: true; item: ImageItem }
  | { applied: false; reason: 'missing' }
  | { applied: false; reason: 'stale'; item: ImageItem }
  /** Reopening it would take the owner past their quota of open uploads. */
  | { applied: false; reason: 'quota'; item: ImageItem };
