/** Errors of the `ObjectStore` port, whatever stores the objects. */

/** No object under that key. */
export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';
  readonly code = 'ObjectNotFound';
  readonly bucket: string;
  readonly key: string;

  constructor(bucket: string, key: string, options?: { cause?: unknown }) {
    super(`No object s3://${bucket}/${key}`, options);
    this.bucket = bucket;
    this.key = key;
  }
}

/** The object is larger than the caller accepts; it was not read. */
export class ObjectTooLargeError extends Error {
  override readonly name = 'ObjectTooLargeError';
  readonly code = 'ObjectTooLarge';
  readonly size: number;
  readonly maxBytes: number;

  constructor(bucket: string, key: string, size: number, maxBytes: number) {
    super(`Object s3://${bucket}/${key} has ${size} bytes, more than ${maxBytes}`);
    this.size = size;
    this.maxBytes = maxBytes;
  }
}

/** DeleteObjects reported keys it could not delete. */
export class ObjectDeleteError extends Error {
  override readonly name = 'ObjectDeleteError';
  readonly code = 'ObjectDeleteFailed';
  readonly keys: string[];

  constructor(bucket: string, failures: ReadonlyArray<{ key: string; code: string }>) {
    const sample = failures
      .slice(0, 3)
      .map((f) => `${f.key} (${f.code})`)
      .join(', ');
    super(`Could not delete ${failures.length} object(s) from ${bucket}: ${sample}`);
    this.keys = failures.map((f) => f.key);
  }
}
