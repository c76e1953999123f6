import type { FailureCode } from '../../../contract/index.ts';

/** Why an uploaded file could not become variants. None of these change on a retry. */
export type ImageFailureCode = Extract<
  FailureCode,
  'UnsupportedFormat' | 'TooManyPixels' | 'TooManyFrames' | 'CorruptImage' | 'ProcessingTimeout'
>;

/** A failure caused by the file's bytes: the record ends `failed` with this code, never retried. */
export class ImageError extends Error {
  override readonly name = 'ImageError';
  readonly code: ImageFailureCode;

  constructor(code: ImageFailureCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
