/** Every error the client library throws or reports: a stable `code`, and the `cause` when known. */
export class PhotoIntakeError extends Error {
  override readonly name: string = 'PhotoIntakeError';
  readonly code: string;
  /** Whether trying the same request again later may succeed. */
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** The API answered with an error body (`{"error": {"code", "message"}}`) or an unexpected status. */
export class ApiRequestError extends PhotoIntakeError {
  override readonly name = 'ApiRequestError';
  readonly status: number;
  readonly details: unknown[] | undefined;
  /** From `Retry-After`, when the API sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: unknown[]; retryAfterMs?: number | undefined } = {},
  ) {
    super(code, message, { retryable: status === 429 || status >= 500 });
    this.status = status;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** The request never got an answer (connection refused or reset, DNS, offline). */
export class NetworkError extends PhotoIntakeError {
  override readonly name = 'NetworkError';

  constructor(message: string, cause?: unknown) {
    super('NetworkError', message, { cause, retryable: true });
  }
}

/**
 * What the storage endpoint found wrong with an upload, in the client's words:
 * - `expired`: the upload URL ran out (a fresh one is needed);
 * - `signature`: the request differs from what was signed (a header, the key, the content type);
 * - `digest`: the bytes do not match the signed SHA-256 (the file changed since it was hashed);
 * - `size`: the body's length differs from the signed size, or is over the limit;
 * - `denied`: refused for another reason (e.g. the image was deleted);
 * - `throttled`, `unavailable`: the storage endpoint is busy or failing (retried);
 * - `unknown`: anything else.
 */
export type StorageErrorReason =
  | 'expired'
  | 'signature'
  | 'digest'
  | 'size'
  | 'denied'
  | 'throttled'
  | 'unavailable'
  | 'unknown';

const REASON_TEXT: Record<StorageErrorReason, string> = {
  expired: 'the upload URL has expired',
  signature: 'the upload request does not match what was signed',
  digest: 'the bytes do not match the SHA-256 they were announced with (did the file change?)',
  size: "the body's size is not the announced size",
  denied: 'the storage endpoint refused the upload',
  throttled: 'the storage endpoint asked to slow down',
  unavailable: 'the storage endpoint failed',
  unknown: 'the storage endpoint refused the upload',
};

/** The storage endpoint (S3 or the local stack's) refused a PUT; `reason` says why. */
export class StorageError extends PhotoIntakeError {
  override readonly name = 'StorageError';
  readonly status: number;
  readonly reason: StorageErrorReason;
  /** S3's own error code (`AccessDenied`, `BadDigest`, ...), when the answer had one. */
  readonly storageCode: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(
    status: number,
    reason: StorageErrorReason,
    storageCode: string | undefined,
    storageMessage: string | undefined,
    retryAfterMs?: number,
  ) {
    const detail = [storageCode, storageMessage].filter(Boolean).join(': ');
    super(STORAGE_CODES[reason], `${REASON_TEXT[reason]} (${status}${detail ? ` ${detail}` : ''})`, {
      retryable: reason === 'throttled' || reason === 'unavailable',
    });
    this.status = status;
    this.reason = reason;
    this.storageCode = storageCode;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The `code` of a `StorageError` for each reason: what a user or a script keys on. */
export const STORAGE_CODES: Record<StorageErrorReason, string> = {
  expired: 'UploadUrlExpired',
  signature: 'UploadSignatureMismatch',
  digest: 'UploadDigestMismatch',
  size: 'UploadSizeMismatch',
  denied: 'UploadDenied',
  throttled: 'StorageThrottled',
  unavailable: 'StorageUnavailable',
  unknown: 'StorageError',
};

const EXPIRED = /expired/i;

/**
 * Reads S3's XML error answer (`<Error><Code>..</Code><Message>..</Message></Error>`) into a typed
 * error. Works without a DOM parser, so the same code runs in Node and in browsers.
 */
export function storageErrorFrom(
  status: number,
  body: string,
  options: { urlExpired?: boolean; retryAfterMs?: number | undefined } = {},
): StorageError {
  const code = xmlField(body, 'Code');
  const message = xmlField(body, 'Message');
  let reason: StorageErrorReason;
  if (code === 'BadDigest' || code === 'InvalidDigest' || code === 'XAmzContentSHA256Mismatch') {
    reason = 'digest';
  } else if (
    code === 'EntityTooLarge' ||
    code === 'EntityTooSmall' ||
    code === 'IncompleteBody' ||
    code === 'MissingContentLength' ||
    status === 411 ||
    status === 413
  ) {
    reason = 'size';
  } else if (code === 'SlowDown' || status === 429 || status === 503) {
    reason = 'throttled';
  } else if (status >= 500) {
    reason = 'unavailable';
  } else if ((code === 'AccessDenied' && EXPIRED.test(message ?? '')) || code === 'ExpiredToken') {
    reason = 'expired';
  } else if (
    code === 'SignatureDoesNotMatch' ||
    code === 'AuthorizationQueryParametersError' ||
    code === 'InvalidAccessKeyId'
  ) {
    // A signature checked after the URL ran out reads as a mismatch on some servers.
    reason = options.urlExpired ? 'expired' : 'signature';
  } else if (status === 403) {
    reason = options.urlExpired ? 'expired' : 'denied';
  } else {
    reason = 'unknown';
  }
  return new StorageError(status, reason, code, message, options.retryAfterMs);
}

function xmlField(xml: string, name: string): string | undefined {
  const found = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return found?.[1]
    ?.replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/** Whether an error is the abort of the caller's `AbortSignal` (not a failure to report). */
export function isAbort(error: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return true;
  return error instanceof Error && error.name === 'AbortError';
}
