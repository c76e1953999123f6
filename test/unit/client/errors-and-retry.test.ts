import { describe, expect, it } from 'vitest';
import { StorageError, storageErrorFrom } from '../../../client/errors.ts';
import { backoffDelay, DEFAULT_RETRY, parseRetryAfter } from '../../../client/retry.ts';

const s3Error = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>1</RequestId></Error>`;

describe('storage errors', () => {
  it.each([
    [403, 'AccessDenied', 'Request has expired', 'expired', 'UploadUrlExpired'],
    [
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match',
      'signature',
      'UploadSignatureMismatch',
    ],
    [
      400,
      'BadDigest',
      'The SHA256 you specified did not match the calculated checksum.',
      'digest',
      'UploadDigestMismatch',
    ],
    [
      400,
      'EntityTooLarge',
      'Your proposed upload exceeds the maximum allowed size',
      'size',
      'UploadSizeMismatch',
    ],
    [
      400,
      'IncompleteBody',
      'You did not provide the number of bytes specified',
      'size',
      'UploadSizeMismatch',
    ],
    [403, 'AccessDenied', 'Access Denied', 'denied', 'UploadDenied'],
    [503, 'SlowDown', 'Please reduce your request rate.', 'throttled', 'StorageThrottled'],
    [500, 'InternalError', 'We encountered an internal error.', 'unavailable', 'StorageUnavailable'],
  ] as const)('%i %s reads as %s', (status, code, message, reason, clientCode) => {
    const error = storageErrorFrom(status, s3Error(code, message));
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ status, reason, code: clientCode, storageCode: code });
    expect(error.message).toContain(code);
    expect(error.retryable).toBe(reason === 'throttled' || reason === 'unavailable');
  });

  it('reads a refused signature on a URL past its time as expired', () => {
    const error = storageErrorFrom(403, s3Error('SignatureDoesNotMatch', 'no'), { urlExpired: true });
    expect(error.reason).toBe('expired');
  });

  it('copes with an answer that is not XML', () => {
    expect(storageErrorFrom(502, '<html>Bad gateway</html>')).toMatchObject({ reason: 'unavailable' });
    expect(storageErrorFrom(400, '')).toMatchObject({ reason: 'unknown', storageCode: undefined });
  });
});

describe('retry timing', () => {
  it('doubles the ceiling each try, jitters within its upper half, and caps it', () => {
    const low = { ...DEFAULT_RETRY, random: () => 0 };
    const high = { ...DEFAULT_RETRY, random: () => 0.999_999 };
    expect([1, 2, 3].map((n) => backoffDelay(low, n))).toEqual([100, 200, 400]);
    expect([1, 2, 3].map((n) => backoffDelay(high, n))).toEqual([200, 400, 800]);
    expect(backoffDelay(high, 30)).toBe(DEFAULT_RETRY.maxDelayMs);
  });

  it('waits at least as long as Retry-After asks', () => {
    expect(backoffDelay({ ...DEFAULT_RETRY, random: () => 0 }, 1, 3_000)).toBe(3_000);
    expect(parseRetryAfter('7')).toBe(7_000);
    expect(parseRetryAfter(new Date(60_000).toUTCString(), 0)).toBe(60_000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
