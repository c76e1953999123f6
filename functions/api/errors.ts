/** Stable codes the API answers with; see the contract. */
export type ApiErrorCode =
  | 'InvalidRequest'
  | 'TooManyFiles'
  | 'Unauthorized'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'QuotaExceeded'
  | 'RateLimited'
  | 'InternalError'
  | 'ServiceUnavailable';

const STATUS: Record<ApiErrorCode, number> = {
  InvalidRequest: 400,
  TooManyFiles: 400,
  Unauthorized: 401,
  NotFound: 404,
  MethodNotAllowed: 405,
  QuotaExceeded: 429,
  RateLimited: 429,
  InternalError: 500,
  ServiceUnavailable: 503,
};

/** An error the client can act on: its code, message and details go into the response as they are. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly details: unknown[] | undefined;
  /** Seconds, for 429 and 503. */
  readonly retryAfter: number | undefined;

  constructor(
    code: ApiErrorCode,
    message: string,
    options: { details?: unknown[]; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = STATUS[code];
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }
}

export const notFound = (what: string) => new ApiError('NotFound', `${what} was not found.`);
