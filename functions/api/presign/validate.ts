import { type ErrorInfo, type FileRejectionCode, MAX_ERROR_DETAILS } from '../../../contract/index.ts';
import { ApiError } from '../errors.ts';

export interface FileRequest {
  name: string;
  /** The content type the upload URL pins (what the client sends with the bytes). */
  type: string;
  size: number;
  sha256?: string | undefined;
}

export type ValidatedFile =
  | { ok: true; file: FileRequest }
  | { ok: false; name: string; error: ErrorInfo & { code: FileRejectionCode } };

export interface UploadLimits {
  maxFilesPerBatch: number;
  maxBytes: number;
  acceptedTypes: readonly string[];
}

export interface ValidatedUpload {
  files: ValidatedFile[];
  callbackUrl: string | undefined;
}

const MAX_NAME_LENGTH = 255;
const MAX_CALLBACK_URL_LENGTH = 2048;
// Control characters and path separators: a name is a file's name, never a path.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const BAD_NAME = /[\u0000-\u001f\u007f/\\]/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** What browsers and phones declare when they do not know the type: the bytes decide. */
const UNKNOWN_TYPES = new Set(['', 'application/octet-stream']);
/** Common misspellings of accepted types, and what they mean. */
const TYPE_ALIASES: Record<string, string> = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg' };

const invalid = (message: string, details: { path: string; message: string }[] = []) =>
  new ApiError('InvalidRequest', message, { details: details.slice(0, MAX_ERROR_DETAILS) });

/**
 * Checks a `POST /v1/uploads` body. Throws `ApiError` (`InvalidRequest`, `TooManyFiles`) when the
 * request as a whole is unusable; otherwise returns one result per file, in request order. The work
 * and the error are bounded by the limits, whatever the body holds: the list's length is checked
 * before any entry is looked at, and an error names at most `MAX_ERROR_DETAILS` entries.
 */
export function validateUploadRequest(body: unknown, limits: UploadLimits): ValidatedUpload {
  const shape = 'The body must be {"files": [{"name", "type", "size", "sha256"?}, ...], "callbackUrl"?}.';
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid(shape);
  const { files, callbackUrl } = body as Record<string, unknown>;
  if (!Array.isArray(files)) throw invalid(shape, [{ path: 'files', message: 'must be an array' }]);
  if (files.length === 0) throw invalid('`files` is empty: send at least one file.');
  if (files.length > limits.maxFilesPerBatch) {
    throw new ApiError(
      'TooManyFiles',
      `A batch takes at most ${limits.maxFilesPerBatch} files; this one has ${files.length}. Split it into several batches.`,
    );
  }
  const notObjects = files.flatMap((entry, index) =>
    typeof entry === 'object' && entry !== null && !Array.isArray(entry)
      ? []
      : [{ path: `files.${index}`, message: 'must be an object' }],
  );
  if (notObjects.length > 0) throw invalid(shape, notObjects);
  const accepted = new Set(limits.acceptedTypes.map((t) => t.toLowerCase()));
  return {
    files: files.map((entry: Record<string, unknown>) => validateFile(entry, accepted, limits.maxBytes)),
    callbackUrl: validateCallbackUrl(callbackUrl),
  };
}

function validateCallbackUrl(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw.length > MAX_CALLBACK_URL_LENGTH || !URL.canParse(raw)) {
    throw invalid(`callbackUrl must be an absolute URL of at most ${MAX_CALLBACK_URL_LENGTH} characters.`);
  }
  const { protocol } = new URL(raw);
  if (protocol !== 'https:' && protocol !== 'http:') throw invalid('callbackUrl must be an http(s) URL.');
  return raw;
}

function validateFile(
  entry: Record<string, unknown>,
  accepted: ReadonlySet<string>,
  maxBytes: number,
): ValidatedFile {
  const { name, type, size, sha256 } = entry;
  const shownName = typeof name === 'string' ? name.slice(0, MAX_NAME_LENGTH) : '';
  const reject = (code: FileRejectionCode, message: string): ValidatedFile => ({
    ok: false,
    name: shownName,
    error: { code, message },
  });
  if (
    typeof name !== 'string' ||
    name.trim() === '' ||
    name.length > MAX_NAME_LENGTH ||
    BAD_NAME.test(name)
  ) {
    return reject(
      'InvalidName',
      `name must be 1-${MAX_NAME_LENGTH} characters, without control characters or path separators.`,
    );
  }
  const declared = typeof type === 'string' ? type.trim().toLowerCase() : undefined;
  const normalizedType =
    declared === undefined
      ? undefined
      : UNKNOWN_TYPES.has(declared)
        ? 'application/octet-stream'
        : (TYPE_ALIASES[declared] ?? declared);
  if (
    normalizedType === undefined ||
    (normalizedType !== 'application/octet-stream' && !accepted.has(normalizedType))
  ) {
    return reject(
      'UnsupportedType',
      `type must be one of: ${[...accepted].join(', ')} (or "" / application/octet-stream when unknown).`,
    );
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) {
    return reject('InvalidSize', 'size must be the file size in bytes, a whole number of at least 1.');
  }
  if (size > maxBytes) {
    return reject('TooLarge', `The file is ${size} bytes; the limit is ${maxBytes} bytes.`);
  }
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256.toLowerCase()))) {
    return reject('InvalidChecksum', 'sha256 must be the SHA-256 of the file as 64 hexadecimal characters.');
  }
  return {
    ok: true,
    file: {
      name,
      type: normalizedType,
      size,
      ...(typeof sha256 === 'string' ? { sha256: sha256.toLowerCase() } : {}),
    },
  };
}
