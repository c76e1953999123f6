import { z } from 'zod';
import { ApiError } from '../errors.ts';

/** The rules one file must meet; a file that breaks one is rejected alone, with this code. */
export type FileRejectionCode =
  | 'InvalidName'
  | 'UnsupportedType'
  | 'InvalidSize'
  | 'TooLarge'
  | 'InvalidChecksum';

export interface FileRequest {
  name: string;
  type: string;
  size: number;
  sha256?: string | undefined;
}

export type ValidatedFile =
  | { ok: true; file: FileRequest }
  | { ok: false; name: string; error: { code: FileRejectionCode; message: string } };

export interface UploadLimits {
  maxFilesPerBatch: number;
  maxBytes: number;
  acceptedTypes: readonly string[];
}

// The body's shape is checked as a whole; each entry only has to be an object, so that a file
// with a bad field is rejected alone instead of failing the batch.
const BodySchema = z.object({ files: z.array(z.looseObject({})) });

const MAX_NAME_LENGTH = 255;
// Control characters and path separators: a name is a file's name, never a path.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const BAD_NAME = /[\u0000-\u001f\u007f/\\]/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Checks a `POST /v1/uploads` body. Throws `ApiError` (`InvalidRequest`, `TooManyFiles`) when the
 * request as a whole is unusable; otherwise returns one result per file, in request order.
 */
export function validateUploadRequest(body: unknown, limits: UploadLimits): ValidatedFile[] {
  const parsed = BodySchema.safeParse(body);
  if (!parsed.success) {
    throw new ApiError(
      'InvalidRequest',
      'The body must be {"files": [{"name", "type", "size", "sha256"?}, ...]}.',
      {
        details: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
      },
    );
  }
  const { files } = parsed.data;
  if (files.length === 0) {
    throw new ApiError('InvalidRequest', '`files` is empty: send at least one file.');
  }
  if (files.length > limits.maxFilesPerBatch) {
    throw new ApiError(
      'TooManyFiles',
      `A batch takes at most ${limits.maxFilesPerBatch} files; this one has ${files.length}. Split it into several batches.`,
    );
  }
  const accepted = new Set(limits.acceptedTypes.map((t) => t.toLowerCase()));
  return files.map((entry) => validateFile(entry, accepted, limits.maxBytes));
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
  const normalizedType = typeof type === 'string' ? type.trim().toLowerCase() : '';
  if (!accepted.has(normalizedType)) {
    return reject('UnsupportedType', `type must be one of: ${[...accepted].join(', ')}.`);
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
