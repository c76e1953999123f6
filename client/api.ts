import type {
  BatchView,
  CreatedBatch,
  ImageView,
  ItemView,
  Limits,
  UploadRequest,
  UploadUrl,
} from '../contract/index.ts';
import { ApiRequestError, isAbort, NetworkError } from './errors.ts';
import { backoffDelay, DEFAULT_RETRY, parseRetryAfter, type RetryPolicy, sleep } from './retry.ts';

export interface ClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:3000` or `https://api.example.com`. */
  api: string;
  /** The bearer token (on the local stack: the owner id). A function is asked before each request. */
  token: string | (() => string | Promise<string>);
  /** Defaults to the platform's `fetch`. */
  fetch?: typeof fetch;
  retry?: Partial<RetryPolicy>;
}

/** A page of a batch, or `notModified` when the `etag` sent is still current. */
export type BatchPage =
  | { notModified: true }
  | { notModified: false; etag: string | undefined; view: BatchView };

/** The contract's defaults: used when the API has no `GET /v1/limits` (an older deployment). */
export const DEFAULT_LIMITS: Limits = {
  maxFilesPerBatch: 500,
  maxBytes: 52_428_800,
  acceptedTypes: [],
  uploadUrlTtlSeconds: 900,
  variants: [],
};

interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Statuses answered without throwing (besides 2xx). */
  accept?: readonly number[];
}

/**
 * The API's routes, typed, with retries: network errors, `5xx` and `429` are tried again with
 * backoff and jitter, honouring `Retry-After`. Errors are `ApiRequestError` (with the contract's
 * `code`) or `NetworkError`.
 */
export class ApiClient {
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
  readonly #token: ClientOptions['token'];
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.baseUrl = options.api.replace(/\/+$/, '');
    this.#token = options.token;
    // Called unbound, as browsers require of their fetch.
    const platformFetch = options.fetch ?? globalThis.fetch;
    this.#fetch = (input, init) => platformFetch(input, init);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  /** The fetch this client uses, for the uploads to the storage endpoint. */
  get fetch(): typeof fetch {
    return this.#fetch;
  }

  /** `GET /v1/health`, tried once: tells quickly whether the API can be reached at all. */
  async health(signal?: AbortSignal): Promise<void> {
    await this.#once('GET', '/v1/health', { signal });
  }

  /** The limits in force for this owner (`GET /v1/limits`); the contract's defaults on an older API. */
  async limits(signal?: AbortSignal): Promise<Limits> {
    const { status, body } = await this.#request('GET', '/v1/limits', { signal, accept: [404] });
    return status === 404 ? DEFAULT_LIMITS : (body as Limits);
  }

  /** Starts a batch: one item per file, in order, each with what to send or why it was refused. */
  async createBatch(request: UploadRequest, signal?: AbortSignal): Promise<CreatedBatch> {
    const { body } = await this.#request('POST', '/v1/uploads', { body: request, signal });
    return body as CreatedBatch;
  }

  /**
   * A fresh upload URL for an image still waiting for its bytes; `undefined` when its bytes have
   * already landed (`409 AlreadyUploaded`).
   */
  async refreshUpload(imageId: string, signal?: AbortSignal): Promise<UploadUrl | undefined> {
    const { status, body } = await this.#request('POST', `/v1/images/${encodeURIComponent(imageId)}/upload`, {
      signal,
      accept: [409],
    });
    return status === 409 ? undefined : (body as UploadUrl);
  }

  async getImage(imageId: string, signal?: AbortSignal): Promise<ImageView> {
    const { body } = await this.#request('GET', `/v1/images/${encodeURIComponent(imageId)}`, { signal });
    return body as ImageView;
  }

  async deleteImage(imageId: string, signal?: AbortSignal): Promise<void> {
    await this.#request('DELETE', `/v1/images/${encodeURIComponent(imageId)}`, { signal });
  }

  /** One page of a batch; with `etag`, `notModified` while nothing in the batch changed. */
  async getBatchPage(
    batchId: string,
    options: { cursor?: string; limit?: number; etag?: string; signal?: AbortSignal } = {},
  ): Promise<BatchPage> {
    const query = new URLSearchParams({ limit: String(options.limit ?? 500) });
    if (options.cursor) query.set('cursor', options.cursor);
    const { status, body, headers } = await this.#request(
      'GET',
      `/v1/batches/${encodeURIComponent(batchId)}?${query}`,
      {
        signal: options.signal,
        headers: options.etag ? { 'if-none-match': options.etag } : {},
        accept: [304],
      },
    );
    if (status === 304) return { notModified: true };
    return { notModified: false, etag: headers.get('etag') ?? undefined, view: body as BatchView };
  }

  /** The whole batch, every page, with the first page's tag. */
  async getBatch(batchId: string, options: { etag?: string; signal?: AbortSignal } = {}): Promise<BatchPage> {
    const first = await this.getBatchPage(batchId, options);
    if (first.notModified) return first;
    const items: ItemView[] = [...first.view.items];
    let cursor = first.view.nextCursor;
    while (cursor) {
      const page = await this.getBatchPage(batchId, { cursor, signal: options.signal });
      if (page.notModified) break;
      items.push(...page.view.items);
      cursor = page.view.nextCursor;
    }
    const { nextCursor: _, ...rest } = first.view;
    return { notModified: false, etag: first.etag, view: { ...rest, items } };
  }

  async #request(method: string, route: string, options: RequestOptions = {}) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(method, route, options);
      } catch (error) {
        if (isAbort(error, options.signal)) throw error;
        const retryable =
          error instanceof NetworkError || (error instanceof ApiRequestError && error.retryable);
        if (!retryable || attempt >= this.retry.retries) throw error;
        const retryAfter = error instanceof ApiRequestError ? error.retryAfterMs : undefined;
        await sleep(backoffDelay(this.retry, attempt + 1, retryAfter), options.signal);
      }
    }
  }

  async #once(method: string, route: string, options: RequestOptions) {
    const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...options.headers };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.#fetch(`${this.baseUrl}${route}`, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (isAbort(error, options.signal)) throw options.signal?.reason ?? error;
      throw new NetworkError(`${method} ${this.baseUrl}${route}: no answer (${describe(error)})`, error);
    }
    const text = await readText(response, options.signal, `${method} ${route}`);
    const ok = response.ok || options.accept?.includes(response.status);
    if (ok) {
      return {
        status: response.status,
        headers: response.headers,
        body: text ? JSON.parse(text) : undefined,
      };
    }
    throw apiError(response, text, `${method} ${route}`);
  }
}

async function readText(response: Response, signal: AbortSignal | undefined, what: string): Promise<string> {
  try {
    return await response.text();
  } catch (error) {
    if (isAbort(error, signal)) throw signal?.reason ?? error;
    throw new NetworkError(`${what}: the answer was cut off (${describe(error)})`, error);
  }
}

function apiError(response: Response, text: string, what: string): ApiRequestError {
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  let parsed: { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const code = typeof parsed?.error?.code === 'string' ? parsed.error.code : `Http${response.status}`;
  const message =
    typeof parsed?.error?.message === 'string' ? parsed.error.message : `${what}: HTTP ${response.status}`;
  const details = Array.isArray(parsed?.error?.details) ? parsed.error.details : undefined;
  return new ApiRequestError(response.status, code, message, {
    ...(details ? { details } : {}),
    retryAfterMs,
  });
}

/** The innermost cause's message: fetch reports "fetch failed" with the reason in `cause`. */
export function describe(error: unknown): string {
  let current: unknown = error;
  let text = String(error);
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    text = current.message;
    current = current.cause;
  }
  if (current && typeof current === 'object' && 'code' in current) text = `${text} ${String(current.code)}`;
  return text;
}
