/**
 * The contract's request and response shapes, written from `../shared/CONTRACT.md` (v2) until the
 * contract module lands in main; then the library imports its types from `contract/` and this file
 * goes away.
 */

export type ImageStatus = 'pending' | 'uploaded' | 'processing' | 'ready' | 'failed' | 'expired';
export type ItemStatus = ImageStatus | 'rejected';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown[] };
}

export interface FileRequest {
  name: string;
  type: string;
  size: number;
  sha256?: string;
}

export interface CreateBatchRequest {
  files: FileRequest[];
  callbackUrl?: string;
}

export interface UploadInstruction {
  method: string;
  url: string;
  headers: Record<string, string>;
}

export interface CreatedItem {
  index: number;
  imageId?: string;
  status: ItemStatus;
  upload?: UploadInstruction;
  error?: { code: string; message: string };
  duplicateOf?: string;
}

export interface CreateBatchResponse {
  batchId: string;
  expiresAt: string;
  items: CreatedItem[];
}

export interface RefreshUploadResponse {
  imageId: string;
  expiresAt: string;
  upload: UploadInstruction;
}

export interface Variant {
  name: string;
  format: string;
  width: number;
  height: number;
  size: number;
  url: string;
}

export interface ImageView {
  imageId: string;
  batchId: string;
  index: number;
  name: string;
  status: ItemStatus;
  type: string;
  size: number;
  createdAt: string;
  updatedAt: string;
  width?: number;
  height?: number;
  format?: string;
  placeholder?: string;
  variants?: Variant[];
  error?: { code: string; message: string };
  duplicateOf?: string;
}

export interface RejectedView {
  index: number;
  name: string;
  status: 'rejected';
  createdAt: string;
  error: { code: string; message: string };
}

export type BatchItemView = ImageView | RejectedView;

export interface BatchView {
  batchId: string;
  total: number;
  counts: Record<ItemStatus, number>;
  complete: boolean;
  expiresAt?: string;
  items: BatchItemView[];
  nextCursor?: string;
}

export interface Limits {
  maxFilesPerBatch: number;
  maxBytes: number;
  acceptedTypes: string[];
  uploadUrlTtlSeconds: number;
  variants: Array<{ name: string; format: string; width: number; height: number }>;
}
