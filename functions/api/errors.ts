import { API_ERROR_STATUS, type ApiErrorCode } from '../../contract/index.ts';

/** An error the client can act on: its code, message and details go into the response as they are. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly details: { path: string; message: string }[] | undefined;
  /** Seconds, for 429 and 503. */
  readonly retryAfter: number | undefined;

  constructor(
    code: ApiErrorCode,
    message: string,
    options: { details?: { path: string; message: string }[]; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = API_ERROR_STATUS[code];
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }
}

export const notFound = (what: string) => new ApiError('NotFound', `${what} was not found.`);
