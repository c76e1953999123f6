import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../functions/api/errors.ts';
import { validateUploadRequest } from '../../../functions/api/presign/validate.ts';

const limits = { maxFilesPerBatch: 3, maxBytes: 1000, acceptedTypes: ['image/jpeg', 'image/png'] };
const good = { name: 'IMG_1.jpg', type: 'image/jpeg', size: 10 };

const codeOf = (body: unknown) => {
  try {
    validateUploadRequest(body, limits);
  } catch (error) {
    return error instanceof ApiError ? error.code : 'not an ApiError';
  }
  return 'accepted';
};

describe('validateUploadRequest', () => {
  it.each([
    ['a non-object', 'nope'],
    ['no files', {}],
    ['files not a list', { files: 'x' }],
    ['an entry that is not an object', { files: [good, 3] }],
    ['an empty list', { files: [] }],
  ])('refuses %s as a whole with InvalidRequest', (_, body) => {
    expect(codeOf(body)).toBe('InvalidRequest');
  });

  it('refuses more files than the limit with TooManyFiles', () => {
    expect(codeOf({ files: [good, good, good, good] })).toBe('TooManyFiles');
  });

  it('rejects a file that breaks one rule alone, in request order', () => {
    const results = validateUploadRequest(
      {
        files: [
          { ...good, type: 'image/svg+xml' },
          good,
          { ...good, size: 1001 },
          // Three per-file rules broken at once: the first one checked is reported.
        ],
      },
      limits,
    );
    expect(results.files.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual([
      'UnsupportedType',
      'ok',
      'TooLarge',
    ]);
  });

  it.each([
    ['an empty name', { ...good, name: '  ' }, 'InvalidName'],
    ['a path for a name', { ...good, name: '../etc/passwd' }, 'InvalidName'],
    ['a control character', { ...good, name: 'a\u0000.jpg' }, 'InvalidName'],
    ['a name over 255 characters', { ...good, name: `${'a'.repeat(252)}.jpg` }, 'InvalidName'],
    ['a fractional size', { ...good, size: 1.5 }, 'InvalidSize'],
    ['a zero size', { ...good, size: 0 }, 'InvalidSize'],
    ['a size as a string', { ...good, size: '10' }, 'InvalidSize'],
    ['a short checksum', { ...good, sha256: 'abc' }, 'InvalidChecksum'],
    ['a missing type', { name: 'a.jpg', size: 1 }, 'UnsupportedType'],
  ])('rejects %s', (_, file, code) => {
    const [result] = validateUploadRequest({ files: [file] }, limits).files;
    expect(result).toMatchObject({ ok: false, error: { code } });
  });

  it('normalizes type and checksum case', () => {
    const [result] = validateUploadRequest(
      { files: [{ ...good, type: 'IMAGE/JPEG', sha256: 'A'.repeat(64) }] },
      limits,
    ).files;
    expect(result).toEqual({ ok: true, file: { ...good, type: 'image/jpeg', sha256: 'a'.repeat(64) } });
  });

  it.each([
    ['""', '', 'application/octet-stream'],
    ['application/octet-stream', 'application/octet-stream', 'application/octet-stream'],
    ['image/jpg', 'image/jpg', 'image/jpeg'],
  ])('accepts the declared type %s and lets the bytes decide', (_, type, pinned) => {
    const [result] = validateUploadRequest({ files: [{ ...good, type }] }, limits).files;
    expect(result).toEqual({ ok: true, file: { ...good, type: pinned } });
  });

  it('bounds its work and its answer by the limits, whatever the body holds', () => {
    // A million non-objects: refused by the list's length before any entry is looked at.
    const huge = { files: Array.from({ length: 1_000_000 }, () => 1) };
    expect(() => validateUploadRequest(huge, limits)).toThrow(
      expect.objectContaining({ code: 'TooManyFiles' }),
    );
    // Within the length, every entry a non-object: at most 20 details.
    try {
      validateUploadRequest(
        { files: Array.from({ length: 500 }, () => 'x') },
        { ...limits, maxFilesPerBatch: 500 },
      );
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'InvalidRequest' });
      expect((error as { details: unknown[] }).details).toHaveLength(20);
    }
  });
});
