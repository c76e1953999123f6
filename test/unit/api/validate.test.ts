import fc from 'fast-check';
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

const refusal = (body: unknown, given = limits) => {
  try {
    validateUploadRequest(body, given);
  } catch (error) {
    if (error instanceof ApiError)
      return { code: error.code, message: error.message, details: error.details };
    throw error;
  }
  throw new Error('accepted');
};

describe('what a refused request tells the client', () => {
  it('shows the expected shape, and points at the part of the body that is wrong', () => {
    expect(refusal('nope')).toEqual({
      code: 'InvalidRequest',
      message: expect.stringContaining('{"files": [{"name", "type", "size", "sha256"?}'),
      details: [],
    });
    expect(refusal({ files: 'x' }).details).toEqual([{ path: 'files', message: 'must be an array' }]);
    expect(refusal({ files: [3, good, null] }).details).toEqual([
      { path: 'files.0', message: 'must be an object' },
      { path: 'files.2', message: 'must be an object' },
    ]);
  });

  it('says how many files a batch takes, and how many were sent', () => {
    expect(refusal({ files: [] }).message).toMatch(/at least one file/);
    expect(refusal({ files: [good, good, good, good] }).message).toMatch(/at most 3 files; this one has 4/);
  });
});

describe('callbackUrl', () => {
  const withCallback = (callbackUrl: unknown) => ({ files: [good], callbackUrl });

  it('is handed back as sent when it is an absolute http(s) URL of at most 2,048 characters', () => {
    for (const url of [
      'https://hooks.example.com/photo-intake?token=abc',
      'http://10.0.0.7:8080/done',
      `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`,
    ]) {
      expect(validateUploadRequest(withCallback(url), limits).callbackUrl).toBe(url);
    }
    expect(validateUploadRequest({ files: [good] }, limits).callbackUrl).toBeUndefined();
  });

  it.each([
    ['a number', 42],
    ['null', null],
    ['a relative URL', '/hooks/done'],
    ['not a URL', 'hooks example com'],
    ['2,049 characters', `https://example.com/${'a'.repeat(2049 - 'https://example.com/'.length)}`],
  ])('is refused when it is %s, with the rule in the message', (_, url) => {
    expect(refusal(withCallback(url))).toMatchObject({
      code: 'InvalidRequest',
      message: 'callbackUrl must be an absolute URL of at most 2048 characters.',
    });
  });

  it.each(['ftp://example.com/x', 'javascript:alert(1)', 'file:///etc/passwd', 'data:text/plain,hi'])(
    'is refused when its scheme is not http(s): %s',
    (url) => {
      expect(refusal(withCallback(url))).toMatchObject({
        code: 'InvalidRequest',
        message: 'callbackUrl must be an http(s) URL.',
      });
    },
  );
});

describe('per-file rules at their edges', () => {
  const one = (file: Record<string, unknown>) => validateUploadRequest({ files: [file] }, limits).files[0];

  it('takes a name of exactly 255 characters, and names a refused file as sent, cut to 255', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), fc.constantFrom('a', 'é', '-'), (length, c) => {
        const name = c.repeat(length);
        const result = one({ ...good, name });
        if (length <= 255) expect(result).toMatchObject({ ok: true, file: { name } });
        else
          expect(result).toMatchObject({
            ok: false,
            name: name.slice(0, 255),
            error: { code: 'InvalidName' },
          });
      }),
      { seed: 20_261_201, numRuns: 200 },
    );
    expect(one({ ...good, name: 'a'.repeat(255) })).toMatchObject({ ok: true });
    expect(one({ ...good, name: 'a'.repeat(256) })).toMatchObject({ ok: false });
  });

  it('names a refused file as sent, and a file without a string name as ""', () => {
    expect(one({ ...good, name: 'IMG_2.heic', type: 'image/svg+xml' })).toMatchObject({
      ok: false,
      name: 'IMG_2.heic',
    });
    expect(one({ ...good, name: 7 })).toMatchObject({ ok: false, name: '', error: { code: 'InvalidName' } });
  });

  it('takes a declared type with spaces around it, and a size of 1 byte', () => {
    expect(one({ ...good, type: '  image/png ', size: 1 })).toEqual({
      ok: true,
      file: { ...good, type: 'image/png', size: 1 },
    });
  });

  it('refuses a checksum that is not a string as InvalidChecksum, not with a crash', () => {
    for (const sha256 of [123, null, ['a'.repeat(64)]]) {
      expect(one({ ...good, sha256 })).toMatchObject({ ok: false, error: { code: 'InvalidChecksum' } });
    }
  });

  it('says in each refusal what the rule is', () => {
    const message = (file: Record<string, unknown>) => {
      const result = one(file);
      return result?.ok === false ? result.error.message : 'accepted';
    };
    expect(message({ ...good, name: '' })).toMatch(/1-255 characters/);
    expect(message({ ...good, type: 'image/svg+xml' })).toMatch(/one of: image\/jpeg, image\/png /);
    expect(message({ ...good, size: -1 })).toMatch(/at least 1/);
    expect(message({ ...good, size: 1001 })).toBe('The file is 1001 bytes; the limit is 1000 bytes.');
    expect(message({ ...good, sha256: 'x' })).toMatch(/64 hexadecimal characters/);
  });
});
