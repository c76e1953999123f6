/**
 * photo-intake's client library, for browsers and Node: only the platform (fetch, Web Crypto,
 * AbortSignal; XMLHttpRequest in browsers for upload progress), no runtime dependency.
 *
 *   const client = createClient({ api: 'http://127.0.0.1:3000', token: 'alice' });
 *   const { files, batchIds } = await client.uploadFiles(fileList, { onProgress: console.log });
 *   for (const id of batchIds) await client.waitForBatch(id);
 */

import type { BatchView } from '../contract/index.ts';
import { ApiClient, type ClientOptions } from './api.ts';
import type { UploadInput } from './source.ts';
import { type UploadOptions, type UploadResult, uploadFiles as upload } from './upload.ts';
import { type WaitOptions, waitForBatch as wait } from './wait.ts';

export type {
  BatchView,
  CreatedBatch,
  CreatedItem,
  ErrorBody,
  FileRequest,
  ImageStatus,
  ImageView,
  ItemStatus,
  ItemView,
  Limits,
  PresignedUpload,
  RejectedView,
  UploadRequest,
  UploadUrl,
  VariantView,
} from '../contract/index.ts';
export { ApiClient, type BatchPage, type ClientOptions, DEFAULT_LIMITS } from './api.ts';
export {
  ApiRequestError,
  NetworkError,
  PhotoIntakeError,
  STORAGE_CODES,
  StorageError,
  type StorageErrorReason,
  storageErrorFrom,
} from './errors.ts';
export { defaultTransport, fetchTransport, type PutRequest, type PutTransport, xhrTransport } from './put.ts';
export { DEFAULT_RETRY, type RetryPolicy } from './retry.ts';
export type { UploadInput, UploadSource } from './source.ts';
export type {
  FileOutcome,
  FileStatus,
  SavedFile,
  UploadOptions,
  UploadProgress,
  UploadResult,
  UploadState,
} from './upload.ts';
export type { WaitOptions } from './wait.ts';

/** The API's routes plus the two jobs: uploading files and waiting for batches. */
export class PhotoIntakeClient extends ApiClient {
  /** See `UploadOptions`; resolves when every file is uploaded, already there, rejected or failed. */
  uploadFiles(files: readonly UploadInput[], options?: UploadOptions): Promise<UploadResult> {
    return upload(this, files, options);
  }

  /** Polls until the batch is `complete`; see `WaitOptions`. */
  waitForBatch(batchId: string, options?: WaitOptions): Promise<BatchView> {
    return wait(this, batchId, options);
  }
}

export const createClient = (options: ClientOptions) => new PhotoIntakeClient(options);

/** `createClient(options).uploadFiles(files, options)` in one call. */
export function uploadFiles(
  files: readonly UploadInput[],
  options: ClientOptions & UploadOptions,
): Promise<UploadResult> {
  return createClient(options).uploadFiles(files, options);
}

/** `createClient(options).waitForBatch(batchId, options)` in one call. */
export function waitForBatch(batchId: string, options: ClientOptions & WaitOptions): Promise<BatchView> {
  return createClient(options).waitForBatch(batchId, options);
}
