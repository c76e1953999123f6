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
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(['UnsupportedType', 'ok', 'TooLarge']);
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
    const [result] = validateUploadRequest({ files: [file] }, limits);
    expect(result).toMatchObject({ ok: false, error: { code } });
  });

  it('normalizes type and checksum case', () => {
    const [result] = validateUploadRequest(
      { files: [{ ...good, type: 'IMAGE/JPEG', sha256: 'A'.repeat(64) }] },
      limits,
    );
    expect(result).toEqual({ ok: true, file: { ...good, type: 'image/jpeg', sha256: 'a'.repeat(64) } });
  });
});
