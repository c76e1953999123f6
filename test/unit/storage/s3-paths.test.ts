import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assertBucketName,
  assertInside,
  assertStorableKey,
  MAX_KEY_BYTES,
  MAX_SEGMENT_BYTES,
  unstorableKey,
} from '../../../local/emulators/s3-paths.ts';

/** The S3 error code an assertion throws, or `ok`. */
const codeOf = (assertion: () => void) => {
  try {
    assertion();
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? 'not an S3 error';
  }
};

describe('the local storage endpoint key limits', () => {
  it('takes keys up to S3 limit of 1024 UTF-8 bytes, and refuses longer ones as S3 does', () => {
    expect(MAX_KEY_BYTES).toBe(1024);
    const segment = 'a'.repeat(200);
    const atLimit = `${[segment, segment, segment, segment, segment].join('/')}/${'b'.repeat(MAX_KEY_BYTES - 1005)}`;
    expect(Buffer.byteLength(atLimit)).toBe(MAX_KEY_BYTES);
    expect(unstorableKey(atLimit)).toBeUndefined();
    expect(codeOf(() => assertStorableKey(atLimit))).toBe('ok');
    expect(unstorableKey(`${atLimit}c`)).toBe('is longer than 1024 bytes');
    expect(codeOf(() => assertStorableKey(`${atLimit}c`))).toBe('KeyTooLongError');
    // A key of exactly 1024 bytes that is bad for another reason is refused for that reason.
    const dotted = `../${atLimit.slice(3)}`;
    expect(Buffer.byteLength(dotted)).toBe(MAX_KEY_BYTES);
    expect(codeOf(() => assertStorableKey(dotted))).toBe('InvalidArgument');
    // Counted in bytes, not characters: 512 two-byte characters are 1024 bytes.
    const wide = Array.from({ length: 8 }, () => 'é'.repeat(64)).join('/');
    expect(Buffer.byteLength(wide)).toBe(1024 + 7);
    expect(unstorableKey(wide)).toBe('is longer than 1024 bytes');
  });

  it('takes segments up to the file name limit less the metadata suffix, in bytes', () => {
    expect(MAX_SEGMENT_BYTES).toBe(255 - 22);
    expect(unstorableKey(`x/${'a'.repeat(MAX_SEGMENT_BYTES)}`)).toBeUndefined();
    expect(unstorableKey(`x/${'a'.repeat(MAX_SEGMENT_BYTES + 1)}`)).toBe(
      `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`,
    );
    expect(unstorableKey(`${'é'.repeat(117)}/x`)).toBe(
      `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`,
    );
    expect(unstorableKey(`${'é'.repeat(116)}/x`)).toBeUndefined();
  });

  it.each([
    ['../escape', 'has a .. segment'],
    ['a/../../escape', 'has a .. segment'],
    ['./a', 'has a . segment'],
    ['a/./b', 'has a . segment'],
    ['a//b', 'has an empty segment'],
    ['/absolute', 'has an empty segment'],
    ['a\0b', 'contains NUL'],
    ['a/x._S3rver_metadata.json', 'has a segment containing ._S3rver_'],
  ])('refuses %j: it %s', (key, reason) => {
    expect(unstorableKey(key)).toBe(reason);
    expect(codeOf(() => assertStorableKey(key))).toBe('InvalidArgument');
  });

  it.each(['folder/', 'a', 'uploads/01J/01K', 'a.b/..c/d..', 'with space/and+plus'])('keeps %j', (key) => {
    expect(unstorableKey(key)).toBeUndefined();
  });

  it.each([
    ['abc', 'ok'],
    ['a'.repeat(63), 'ok'],
    ['my.bucket-1', 'ok'],
    ['ab', 'InvalidBucketName'],
    ['a'.repeat(64), 'InvalidBucketName'],
    ['Upper', 'InvalidBucketName'],
    ['a..b', 'InvalidBucketName'],
    ['-ab', 'InvalidBucketName'],
    ['ab-', 'InvalidBucketName'],
    ['../x', 'InvalidBucketName'],
  ])('bucket name %j: %s', (bucket, code) => {
    expect(codeOf(() => assertBucketName(bucket))).toBe(code);
  });

  it('keeps every path inside the bucket folder', () => {
    const bucket = path.resolve('/data/bucket');
    expect(codeOf(() => assertInside(bucket, bucket))).toBe('ok');
    expect(codeOf(() => assertInside(bucket, path.join(bucket, 'a/b')))).toBe('ok');
    expect(codeOf(() => assertInside(bucket, path.join(bucket, '..bar')))).toBe('ok');
    expect(codeOf(() => assertInside(bucket, path.resolve('/data')))).toBe('InvalidArgument');
    expect(codeOf(() => assertInside(bucket, path.resolve('/data/other/x')))).toBe('InvalidArgument');
    expect(codeOf(() => assertInside(bucket, path.resolve('/data/bucket-2')))).toBe('InvalidArgument');
  });
});
