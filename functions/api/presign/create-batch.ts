import type { CreatedBatch, CreatedItem, PresignedUpload } from '../../../contract/index.ts';
import { newId } from '../../shared/ids.ts';
import type { BatchRecords, Quotas, SharedFileRecords, SharedFiles } from '../../shared/records/ports.ts';
import {
  type ImageItem,
  type RejectedItem,
  readyFacts,
  type StoredCounts,
} from '../../shared/records/types.ts';
import { uploadKey } from '../../shared/storage/object-keys.ts';
import { type UrlSigner, uploadWindow } from '../../shared/storage/ports.ts';
import { ApiError } from '../errors.ts';
import {
  type FileRequest,
  type UploadLimits,
  type ValidatedFile,
  validateUploadRequest,
} from './validate.ts';

export interface CreateBatchDeps {
  batches: BatchRecords;
  sharedFiles: SharedFileRecords;
  signer: UrlSigner;
  quotas: Quotas;
  uploadBucket: string;
  uploadPrefix: string;
  limits: UploadLimits & { uploadUrlTtlSeconds: number; maxOpenUploads: number };
  /** Where webhooks may go (push/callback-url.ts); throws `CallbackUrlError`. */
  callbacks: { check(url: string): Promise<void> };
  metrics: { filesRequested(count: number): void };
  now?: () => Date;
}

/**
 * Starts a batch: validates every file, records the batch and one item per file, and presigns one
 * PUT per accepted file. Files that break a rule are recorded as `rejected`; the rest proceed. A
 * file whose sha256 matches one of the owner's ready images is `ready` at once (`duplicateOf`).
 */
export async function createBatch(
  deps: CreateBatchDeps,
  owner: string,
  body: unknown,
): Promise<CreatedBatch> {
  const { files: validated, callbackUrl } = validateUploadRequest(body, deps.limits);
  deps.metrics.filesRequested(validated.length);
  if (callbackUrl !== undefined) await deps.callbacks.check(callbackUrl);
  const now = (deps.now ?? (() => new Date()))();
  const createdAt = now.toISOString();
  const { signedAt, expiresAt } = uploadWindow(now, deps.limits.uploadUrlTtlSeconds);
  const batchId = newId();

  const duplicates = await findDuplicates(deps, owner, validated);
  let reserved = validated.filter((r) => r.ok && !(r.file.sha256 && duplicates.has(r.file.sha256))).length;
  await reserveOpenUploads(deps, owner, reserved);
  let records: (ImageItem | RejectedItem)[];
  let uploads: (PresignedUpload | undefined)[];
  try {
    await retainDuplicates(deps, owner, validated, duplicates);
    records = validated.map((result, index) => {
      const itemId = newId();
      const base = { batchId, itemId, index, owner, createdAt, updatedAt: createdAt };
      if (!result.ok) return { ...base, name: result.name, status: 'rejected', error: result.error };
      const image = imageRecord(base, result.file, deps.uploadPrefix, expiresAt);
      const shared = result.file.sha256 ? duplicates.get(result.file.sha256) : undefined;
      return shared ? duplicateRecord(image, shared) : image;
    });
    // A shared file deleted since it was found is uploaded after all: it needs its own reservation
    // (taken whatever the quota, as the batch was admitted with it counted as a duplicate).
    const pending = records.filter((record) => record.status === 'pending').length;
    if (pending > reserved) {
      await deps.quotas.reserveUploads(owner, pending - reserved, Number.MAX_SAFE_INTEGER);
      reserved = pending;
    }
    // Signing is local CPU work and the write is I/O: let them overlap. No URL leaves before the
    // records exist, since both must succeed before the response.
    [uploads] = await Promise.all([
      Promise.all(
        records.map((record) =>
          record.status !== 'pending'
            ? undefined
            : deps.signer.presignPut({
                bucket: deps.uploadBucket,
                key: record.key,
                contentType: record.type,
                contentLength: record.size,
                sha256Hex: record.sha256,
                expiresInSeconds: deps.limits.uploadUrlTtlSeconds,
                signedAt,
              }),
        ),
      ),
      deps.batches.createBatch(
        batchRecord(records, { batchId, owner, createdAt, expiresAt, callbackUrl }),
        records,
      ),
    ]);
  } catch (error) {
    // Nothing was created, as far as the client knows: give the reservation back. Rows written
    // before a failed write release their own when they expire; the reconciler repairs the rest.
    await deps.quotas.releaseUploads(owner, reserved).catch(() => {});
    throw error;
  }

  return {
    batchId,
    expiresAt,
    items: records.map((record, index): CreatedItem => {
      if (record.status === 'rejected') return { index, status: 'rejected', error: record.error };
      if (record.duplicateOf !== undefined) {
        return { index, imageId: record.imageId, status: 'ready', duplicateOf: record.duplicateOf };
      }
      return { index, imageId: record.imageId, status: 'pending', upload: uploads[index] as PresignedUpload };
    }),
  };
}

function imageRecord(
  base: Omit<ImageItem, 'status' | 'imageId' | 'type' | 'size' | 'key' | 'uploadExpiresAt' | 'name'>,
  file: FileRequest,
  prefix: string,
  uploadExpiresAt: string,
): ImageItem {
  return {
    ...base,
    status: 'pending',
    imageId: base.itemId,
    name: file.name,
    type: file.type,
    size: file.size,
    ...(file.sha256 ? { sha256: file.sha256 } : {}),
    key: uploadKey(prefix, base.batchId, base.itemId),
    uploadExpiresAt,
  };
}

async function findDuplicates(
  deps: CreateBatchDeps,
  owner: string,
  validated: readonly ValidatedFile[],
): Promise<Map<string, SharedFiles>> {
  const checksums = validated.flatMap((r) => (r.ok && r.file.sha256 ? [r.file.sha256] : []));
  return checksums.length > 0 ? deps.sharedFiles.find(owner, checksums) : new Map();
}

/** Counts the new users of shared files first, so that a concurrent DELETE never removes them. */
async function retainDuplicates(
  deps: CreateBatchDeps,
  owner: string,
  validated: readonly ValidatedFile[],
  duplicates: Map<string, SharedFiles>,
): Promise<void> {
  const uses = new Map<string, number>();
  for (const r of validated) {
    if (r.ok && r.file.sha256 && duplicates.has(r.file.sha256)) {
      uses.set(r.file.sha256, (uses.get(r.file.sha256) ?? 0) + 1);
    }
  }
  await Promise.all(
    [...uses].map(async ([sha256, count]) => {
      // Deleted in the meantime: these files are uploaded like any other.
      if (!(await deps.sharedFiles.retain(owner, sha256, count))) duplicates.delete(sha256);
    }),
  );
}

/** Reserves the batch's uploads against the owner's quota of open ones, or refuses the batch (429). */
async function reserveOpenUploads(deps: CreateBatchDeps, owner: string, adding: number): Promise<void> {
  const max = deps.limits.maxOpenUploads;
  const reservation = await deps.quotas.reserveUploads(owner, adding, max);
  if (reservation.reserved) return;
  throw new ApiError(
    'QuotaExceeded',
    `You have ${reservation.open} unfinished uploads and this batch adds ${adding}; the limit is ${max}. ` +
      'Upload or abandon the files you already asked for, or send a smaller batch.',
    { retryAfter: reservation.retryAfterSeconds },
  );
}

function duplicateRecord(image: ImageItem, shared: SharedFiles): ImageItem {
  return { ...image, status: 'ready', key: shared.key, ...readyFacts(shared), duplicateOf: shared.imageId };
}

/** The batch row: its counts start from the items as created (rejected and duplicates are final). */
function batchRecord(
  items: readonly (ImageItem | RejectedItem)[],
  base: {
    batchId: string;
    owner: string;
    createdAt: string;
    expiresAt: string;
    callbackUrl: string | undefined;
  },
) {
  const counts: StoredCounts = {
    pending: 0,
    uploaded: 0,
    processing: 0,
    ready: 0,
    failed: 0,
    rejected: 0,
    expired: 0,
  };
  for (const item of items) counts[item.status]++;
  const settled = counts.ready + counts.rejected;
  const { callbackUrl, ...rest } = base;
  return {
    ...rest,
    ...(callbackUrl ? { callbackUrl } : {}),
    total: items.length,
    settled,
    counts,
    pendingUntil: base.expiresAt,
    version: 1,
    // Nothing to wait for: complete at once (and told once, like any completion).
    ...(settled === items.length ? { completedAt: base.createdAt, completions: 1 } : {}),
  };
}
