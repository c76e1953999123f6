import path from 'node:path';
import S3Error from '@20minutes/s3rver/lib/models/error.js';

/** S3's limit on a key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
/**
 * Each key segment is one file or directory name, and s3rver appends up to 22 bytes to the last
 * (`._S3rver_metadata.json`); most filesystems allow 255-byte names.
 */
export const MAX_SEGMENT_BYTES = 255 - '._S3rver_metadata.json'.length;
/** s3rver's own files carry this in their names; a key segment with it could collide with them. */
const RESERVED_MARK = '._S3rver_';
/** S3's bucket naming rules (lowercase letters, digits, dots, hyphens; 3-63 characters). */
const BUCKET_NAME = /^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Why s3rver's filesystem store cannot keep this key faithfully inside its bucket's folder, or
 * undefined when it can. s3rver maps a key to a path by joining its `/`-separated segments, so
 * `.` and `..` would move out of the bucket (`../../x` left `DATA_DIR`), an empty segment
 * (`a//b`) would alias another key, NUL cannot be in a file name, and a segment with s3rver's
 * marker could collide with its metadata files. S3 itself stores all of these; the pipeline's
 * keys are built by the server and never look like them.
 */
export function unstorableKey(key: string): string | undefined {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `is longer than ${MAX_KEY_BYTES} bytes`;
  if (key.includes('\0')) return 'contains NUL';
  const segments = key.split('/');
  for (const [index, segment] of segments.entries()) {
    if (segment === '.' || segment === '..') return `has a ${segment} segment`;
    // The last segment may be empty: `folder/` is a key of its own.
    if (segment === '' && index < segments.length - 1) return 'has an empty segment';
    if (segment.includes(RESERVED_MARK)) return `has a segment containing ${RESERVED_MARK}`;
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      return `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
    }
  }
  return undefined;
}

/** Refuses a key the local store cannot keep inside its bucket, as S3 refuses a bad request. */
export function assertStorableKey(key: string): void {
  const reason = unstorableKey(key);
  if (reason === undefined) return;
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', 'Your key is too long', { MaxSizeAllowed: String(MAX_KEY_BYTES) });
  }
  throw new S3Error(
    'InvalidArgument',
    `The local storage endpoint keeps keys as file paths and cannot store this one: it ${reason}.`,
    { ArgumentName: 'key' },
  );
}

export function assertBucketName(bucket: string): void {
  if (!BUCKET_NAME.test(bucket)) {
    throw new S3Error('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: bucket });
  }
}

/**
 * The last line of defence: a path the store is about to use must be the bucket folder or lie
 * below it, whatever the checks above missed.
 */
export function assertInside(bucketDir: string, target: string): void {
  const relative = path.relative(bucketDir, target);
  if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
    throw new S3Error('InvalidArgument', 'The key does not name an object in this bucket.', {
      ArgumentName: 'key',
    });
  }
}
