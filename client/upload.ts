import type { CreatedBatch, PresignedUpload } from '../contract/index.ts';
import type { ApiClient } from './api.ts';
import { ApiRequestError, isAbort, NetworkError, PhotoIntakeError, StorageError } from './errors.ts';
import { defaultTransport, type PutTransport } from './put.ts';
import { backoffDelay, sleep } from './retry.ts';
import { type NormalizedSource, normalizeSource, type UploadInput } from './source.ts';

/**
 * A file's state in the client, in order: `queued` (not yet in a batch), `pending` (has its upload
 * URL), `uploading` (bytes going up), then one of the final ones: `uploaded` (stored; the service
 * processes it), `ready` (the service already had these bytes: `duplicateOf`), `rejected` (refused
 * when the batch was made), `failed` (could not be uploaded; `error` says why).
 */
export type FileStatus = 'queued' | 'pending' | 'uploading' | 'uploaded' | 'ready' | 'rejected' | 'failed';

const FINAL: ReadonlySet<FileStatus> = new Set(['uploaded', 'ready', 'rejected', 'failed']);

export interface FileOutcome {
  /** Position in the list given to `uploadFiles`. */
  index: number;
  name: string;
  size: number;
  /** What identifies the file in the resumable state. */
  key: string;
  status: FileStatus;
  /** Bytes counted as done for this file (see `UploadProgress`). */
  bytesDone: number;
  batchId?: string;
  imageId?: string;
  duplicateOf?: string;
  error?: { code: string; message: string };
}

/**
 * Totals of a run. A file's bytes count as done as they are sent, and all of them once nothing more
 * will be sent for it (stored, already there, rejected or failed), so both figures only grow and
 * end at the totals.
 */
export interface UploadProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

/** What a run knows of each file, keyed by the file's `key`: save it (JSON) to resume after a crash. */
export interface UploadState {
  version: 1;
  files: Record<string, SavedFile>;
}

export interface SavedFile {
  name: string;
  size: number;
  status: 'pending' | 'uploaded' | 'ready' | 'rejected' | 'failed';
  sha256?: string;
  batchId?: string;
  imageId?: string;
  duplicateOf?: string;
  upload?: PresignedUpload;
  expiresAt?: string;
  /** A PUT was started with this URL: its bytes may have landed. */
  sent?: boolean;
  error?: { code: string; message: string };
}

export interface UploadOptions {
  /** Uploads at once (default 4). */
  concurrency?: number;
  /** Files hashed at once (default 2). */
  hashConcurrency?: number;
  signal?: AbortSignal;
  onProgress?: (progress: UploadProgress) => void;
  /** Every change of a file's status, and its bytes while uploading. */
  onFile?: (file: Readonly<FileOutcome>) => void;
  /** Each batch as soon as it is created (to start waiting for it while the rest uploads). */
  onBatch?: (batch: CreatedBatch) => void;
  /** The state a previous run saved: what it finished is not done again. */
  resume?: UploadState;
  /** Called with the (live) state after every change: serialize it then to keep it. */
  onStateChange?: (state: UploadState) => void;
  /** How bytes are sent (default: XHR in browsers, streamed fetch elsewhere). */
  transport?: PutTransport;
}

export interface UploadResult {
  /** One per input, in input order. */
  files: FileOutcome[];
  /** Every batch the files are in (made by this run or a resumed one). */
  batchIds: string[];
}

/** How long before its `expiresAt` a URL is renewed rather than used. */
const EXPIRY_MARGIN_MS = 2_000;
/** Fresh URLs asked for one file before giving up (each after the storage endpoint said "expired"). */
const MAX_REFRESHES = 5;

interface Task extends FileOutcome {
  source: NormalizedSource;
  sha256?: string;
  upload?: PresignedUpload;
  expiresAt?: string;
  /** Ask the API for a fresh URL (which also tells whether the bytes already landed) before a PUT. */
  needsRefresh: boolean;
  sent: boolean;
}

/**
 * Uploads files: in batches of the server's `maxFilesPerBatch`, each file hashed, PUT with exactly
 * the returned method, URL and headers, a bounded number at once, retried with backoff on network
 * errors, `5xx` and `429`, with a fresh URL when one expired; files the server already has are not
 * sent. Resolves when every file is final (see `FileStatus`); rejects with the signal's reason when
 * aborted, or when the API cannot be reached to create a batch.
 */
export async function uploadFiles(
  api: ApiClient,
  inputs: readonly UploadInput[],
  options: UploadOptions = {},
): Promise<UploadResult> {
  return new UploadRun(api, inputs, options).run();
}

class UploadRun {
  readonly #api: ApiClient;
  readonly #options: UploadOptions;
  readonly #tasks: Task[];
  readonly #state: UploadState;
  readonly #transport: PutTransport;
  /** Aborted by the caller's signal, or by a failure that ends the whole run. */
  readonly #controller = new AbortController();
  readonly #batchIds = new Set<string>();
  readonly #putLimit: Limiter;
  #bytesDone = 0;
  #filesDone = 0;
  readonly #bytesTotal: number;

  constructor(api: ApiClient, inputs: readonly UploadInput[], options: UploadOptions) {
    this.#api = api;
    this.#options = options;
    this.#transport = options.transport ?? defaultTransport(api.fetch);
    this.#putLimit = limiter(Math.max(1, options.concurrency ?? 4));
    this.#state = { version: 1, files: { ...options.resume?.files } };
    this.#tasks = inputs.map((input, index) => {
      const source = normalizeSource(input);
      return {
        index,
        name: source.name,
        size: source.size,
        key: source.key,
        status: 'queued',
        bytesDone: 0,
        source,
        needsRefresh: false,
        sent: false,
      };
    });
    this.#bytesTotal = this.#tasks.reduce((sum, task) => sum + task.size, 0);
  }

  get #signal() {
    return this.#controller.signal;
  }

  async run(): Promise<UploadResult> {
    const outer = this.#options.signal;
    const onAbort = () => this.#controller.abort(outer?.reason);
    if (outer?.aborted) onAbort();
    outer?.addEventListener('abort', onAbort, { once: true });
    const puts: Promise<void>[] = [];
    try {
      const limits = await this.#api.limits(this.#signal);
      const fresh: Task[] = [];
      for (const task of this.#tasks) {
        if (!this.#restore(task)) fresh.push(task);
        else if (!FINAL.has(task.status)) puts.push(this.#schedule(task));
      }
      this.#emitProgress();
      const size = Math.max(1, limits.maxFilesPerBatch);
      for (let start = 0; start < fresh.length; start += size) {
        const chunk = fresh.slice(start, start + size);
        await this.#hash(chunk, limits.maxBytes);
        const created = await this.#api.createBatch(
          {
            files: chunk.map((task) => ({
              name: task.name,
              type: task.source.type,
              size: task.size,
              ...(task.sha256 ? { sha256: task.sha256 } : {}),
            })),
          },
          this.#signal,
        );
        this.#batchIds.add(created.batchId);
        this.#options.onBatch?.(created);
        for (const item of created.items) {
          const task = chunk[item.index];
          if (!task) continue;
          task.batchId = created.batchId;
          if (item.status === 'rejected') {
            this.#finish(task, 'rejected', item.error);
          } else if (item.status === 'ready') {
            task.imageId = item.imageId;
            task.duplicateOf = item.duplicateOf;
            this.#finish(task, 'ready');
          } else {
            task.imageId = item.imageId;
            task.upload = item.upload;
            task.expiresAt = created.expiresAt;
            this.#setStatus(task, 'pending');
            puts.push(this.#schedule(task));
          }
        }
        this.#saveState();
      }
      await settleAll(puts);
      return {
        files: this.#tasks.map(outcomeOf),
        batchIds: [...this.#batchIds],
      };
    } catch (error) {
      // Stop what is still going, and let it finish before saying so.
      if (!this.#signal.aborted) this.#controller.abort(error);
      await Promise.allSettled(puts);
      this.#saveState();
      throw outer?.aborted ? outer.reason : error;
    } finally {
      outer?.removeEventListener('abort', onAbort);
    }
  }

  /** Takes what a previous run knew of this file; false when it starts afresh. */
  #restore(task: Task): boolean {
    const saved = this.#state.files[task.key];
    if (!saved || saved.size !== task.size || !saved.batchId) return false;
    task.batchId = saved.batchId;
    this.#batchIds.add(saved.batchId);
    if (saved.imageId) task.imageId = saved.imageId;
    if (saved.sha256) task.sha256 = saved.sha256;
    if (saved.duplicateOf) task.duplicateOf = saved.duplicateOf;
    if (saved.status === 'uploaded' || saved.status === 'ready' || saved.status === 'rejected') {
      if (saved.error) task.error = saved.error;
      task.status = saved.status;
      task.bytesDone = task.size;
      this.#bytesDone += task.size;
      this.#filesDone++;
      this.#options.onFile?.(outcomeOf(task));
      return true;
    }
    if (!saved.imageId) return false;
    // Waiting for its bytes, or failed before: a URL not yet used is used; otherwise ask for a
    // fresh one, which also says whether the bytes landed after all.
    if (saved.upload && saved.expiresAt && !saved.sent && saved.status === 'pending') {
      task.upload = saved.upload;
      task.expiresAt = saved.expiresAt;
    } else {
      task.needsRefresh = true;
    }
    task.status = 'pending';
    this.#options.onFile?.(outcomeOf(task));
    return true;
  }

  async #hash(chunk: readonly Task[], maxBytes: number): Promise<void> {
    const limit = limiter(Math.max(1, this.#options.hashConcurrency ?? 2));
    await settleAll(
      chunk.map((task) =>
        limit(async () => {
          // A file the API will refuse anyway is not read.
          if (task.sha256 || task.size === 0 || task.size > maxBytes) return;
          this.#signal.throwIfAborted();
          task.sha256 = await task.source.sha256();
        }),
      ),
    );
  }

  /** Queues a file's upload; its rejection (only ever an abort) is collected by `run`. */
  #schedule(task: Task): Promise<void> {
    const upload = this.#putLimit(() => this.#put(task));
    upload.catch(() => undefined);
    return upload;
  }

  async #put(task: Task): Promise<void> {
    let retries = 0;
    let refreshes = 0;
    for (;;) {
      this.#signal.throwIfAborted();
      try {
        if (task.needsRefresh || !task.upload || this.#expiresSoon(task)) {
          const fresh = await this.#api.refreshUpload(task.imageId as string, this.#signal);
          if (!fresh) {
            // 409: the bytes landed before (a lost answer, or a run that stopped after sending).
            this.#finish(task, 'uploaded');
            return;
          }
          task.upload = fresh.upload;
          task.expiresAt = fresh.expiresAt;
          task.needsRefresh = false;
          task.sent = false;
          this.#record(task);
        }
        if (!task.sent) {
          task.sent = true;
          this.#record(task);
          this.#saveState();
        }
        this.#setStatus(task, 'uploading');
        await this.#transport({
          upload: task.upload,
          source: task.source,
          onBytes: (sent) => this.#credit(task, sent),
          signal: this.#signal,
          urlExpired: () => task.expiresAt !== undefined && Date.parse(task.expiresAt) <= Date.now(),
        });
        this.#finish(task, 'uploaded');
        return;
      } catch (error) {
        if (isAbort(error, this.#signal)) throw error;
        if (error instanceof StorageError && error.reason === 'expired' && refreshes < MAX_REFRESHES) {
          refreshes++;
          task.needsRefresh = true;
          continue;
        }
        const retryable = error instanceof PhotoIntakeError && error.retryable;
        if (retryable && retries < this.#api.retry.retries) {
          retries++;
          // No answer: the bytes may have been stored all the same. Asking for a fresh URL first
          // tells (409), so the same bytes are not stored twice (each store is an event to process).
          if (error instanceof NetworkError) task.needsRefresh = true;
          const retryAfter =
            error instanceof StorageError || error instanceof ApiRequestError
              ? error.retryAfterMs
              : undefined;
          await sleep(backoffDelay(this.#api.retry, retries, retryAfter), this.#signal);
          continue;
        }
        this.#finish(task, 'failed', errorInfo(error));
        return;
      }
    }
  }

  #expiresSoon(task: Task): boolean {
    return task.expiresAt !== undefined && Date.parse(task.expiresAt) - Date.now() < EXPIRY_MARGIN_MS;
  }

  #credit(task: Task, sent: number): void {
    const capped = Math.min(sent, task.size);
    if (capped <= task.bytesDone) return;
    this.#bytesDone += capped - task.bytesDone;
    task.bytesDone = capped;
    this.#options.onFile?.(outcomeOf(task));
    this.#emitProgress();
  }

  #setStatus(task: Task, status: FileStatus): void {
    if (task.status === status) return;
    task.status = status;
    this.#record(task);
    this.#options.onFile?.(outcomeOf(task));
  }

  #finish(task: Task, status: FileStatus, error?: { code: string; message: string }): void {
    if (FINAL.has(task.status)) return;
    if (error) task.error = error;
    else delete task.error;
    task.status = status;
    this.#bytesDone += task.size - task.bytesDone;
    task.bytesDone = task.size;
    this.#filesDone++;
    this.#record(task);
    this.#saveState();
    this.#options.onFile?.(outcomeOf(task));
    this.#emitProgress();
  }

  /** Writes the task into the resumable state (not before it is in a batch). */
  #record(task: Task): void {
    if (!task.batchId) return;
    const status = task.status === 'uploading' || task.status === 'queued' ? 'pending' : task.status;
    this.#state.files[task.key] = {
      name: task.name,
      size: task.size,
      status,
      batchId: task.batchId,
      ...(task.imageId ? { imageId: task.imageId } : {}),
      ...(task.sha256 ? { sha256: task.sha256 } : {}),
      ...(task.duplicateOf ? { duplicateOf: task.duplicateOf } : {}),
      ...(task.upload && status === 'pending' ? { upload: task.upload } : {}),
      ...(task.expiresAt && status === 'pending' ? { expiresAt: task.expiresAt } : {}),
      ...(task.sent ? { sent: true } : {}),
      ...(task.error ? { error: task.error } : {}),
    };
  }

  /** Each task is recorded as it changes, so saving is only telling the caller. */
  #saveState(): void {
    this.#options.onStateChange?.(this.#state);
  }

  #emitProgress(): void {
    this.#options.onProgress?.({
      bytesDone: this.#bytesDone,
      bytesTotal: this.#bytesTotal,
      filesDone: this.#filesDone,
      filesTotal: this.#tasks.length,
    });
  }
}

function outcomeOf(task: Task): FileOutcome {
  const { index, name, size, key, status, bytesDone, batchId, imageId, duplicateOf, error } = task;
  return {
    index,
    name,
    size,
    key,
    status,
    bytesDone,
    ...(batchId ? { batchId } : {}),
    ...(imageId ? { imageId } : {}),
    ...(duplicateOf ? { duplicateOf } : {}),
    ...(error ? { error } : {}),
  };
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof PhotoIntakeError) return { code: error.code, message: error.message };
  return { code: 'UploadFailed', message: error instanceof Error ? error.message : String(error) };
}

type Limiter = <T>(work: () => Promise<T>) => Promise<T>;

/** Runs at most `size` pieces of work at once, in the order given. */
export function limiter(size: number): Limiter {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (work) => {
    if (running >= size) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await work();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/** Waits for every promise, then rejects with the first failure if there was one. */
async function settleAll(promises: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
