import type { PresignedUpload } from '../contract/index.ts';
import { describe } from './api.ts';
import { isAbort, NetworkError, storageErrorFrom } from './errors.ts';
import { parseRetryAfter } from './retry.ts';
import type { NormalizedSource } from './source.ts';

export interface PutRequest {
  upload: PresignedUpload;
  source: NormalizedSource;
  /** Bytes of this attempt handed to the network so far. */
  onBytes: (sent: number) => void;
  signal: AbortSignal;
  /** Whether the URL is past its `expiresAt` by the client's clock (reads a refused signature right). */
  urlExpired: () => boolean;
}

/**
 * Sends one file to the storage endpoint with exactly the method, URL and headers the API gave.
 * Resolves when stored; rejects with `StorageError`, `NetworkError` or the signal's reason.
 */
export type PutTransport = (request: PutRequest) => Promise<void>;

/**
 * `fetch` with a streamed body that counts bytes as they go (Node: files are read from disk as
 * sent, never whole in memory). A browser's fetch cannot stream a body of known length, so there the
 * `Blob` is sent whole and progress comes at the end; `xhrTransport` reports it as it goes.
 */
export function fetchTransport(fetchFn: typeof fetch): PutTransport {
  const streaming = (globalThis as { document?: unknown }).document === undefined;
  return async ({ upload, source, onBytes, signal, urlExpired }) => {
    let body: NonNullable<RequestInit['body']>;
    const headers: Record<string, string> = { ...upload.headers };
    if (streaming || !source.blob) {
      const reader = source.stream().getReader();
      let sent = 0;
      body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            return;
          }
          sent += value.byteLength;
          onBytes(sent);
          controller.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      });
      // The signature covers the length, so the body goes with it, not chunked.
      headers['content-length'] = String(source.size);
    } else {
      body = source.blob;
    }
    let response: Response;
    try {
      response = await fetchFn(upload.url, {
        method: upload.method,
        headers,
        body,
        signal,
        ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (error) {
      if (isAbort(error, signal)) throw signal.reason ?? error;
      throw new NetworkError(`PUT ${hostOf(upload.url)}: no answer (${describe(error)})`, error);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (isAbort(error, signal)) throw signal.reason ?? error;
      throw new NetworkError(`PUT ${hostOf(upload.url)}: the answer was cut off`, error);
    }
    if (!response.ok) {
      throw storageErrorFrom(response.status, text, {
        urlExpired: urlExpired(),
        retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
      });
    }
    onBytes(source.size);
  };
}

/** The part of `XMLHttpRequest` used here (the library compiles without the DOM's types). */
interface Xhr {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: unknown): void;
  abort(): void;
  getResponseHeader(name: string): string | null;
  readonly status: number;
  readonly responseText: string;
  upload: { onprogress: ((event: { loaded: number }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  ontimeout: (() => void) | null;
}

/** Browsers: `XMLHttpRequest`, whose upload events give progress as the bytes go up. */
export function xhrTransport(XhrClass: new () => Xhr): PutTransport {
  return ({ upload, source, onBytes, signal, urlExpired }) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const xhr = new XhrClass();
      const onAbort = () => xhr.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      const settle = (error?: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      xhr.open(upload.method, upload.url);
      for (const [name, value] of Object.entries(upload.headers)) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => onBytes(event.loaded);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onBytes(source.size);
          settle();
        } else if (xhr.status === 0) {
          settle(new NetworkError(`PUT ${hostOf(upload.url)}: no answer`));
        } else {
          settle(
            storageErrorFrom(xhr.status, xhr.responseText, {
              urlExpired: urlExpired(),
              retryAfterMs: parseRetryAfter(xhr.getResponseHeader('retry-after')),
            }),
          );
        }
      };
      xhr.onerror = () => settle(new NetworkError(`PUT ${hostOf(upload.url)}: no answer`));
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = () => settle(signal.reason);
      xhr.send(source.blob);
    });
}

/** XHR where there is one (browsers) and the input is a `Blob`; streamed `fetch` otherwise. */
export function defaultTransport(fetchFn: typeof fetch): PutTransport {
  const XhrClass = (globalThis as { XMLHttpRequest?: new () => Xhr }).XMLHttpRequest;
  const viaFetch = fetchTransport(fetchFn);
  if (!XhrClass) return viaFetch;
  const viaXhr = xhrTransport(XhrClass);
  return (request) => (request.source.blob ? viaXhr(request) : viaFetch(request));
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'storage';
  }
}
