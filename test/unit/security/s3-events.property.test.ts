import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeEventKey,
  encodeEventKey,
  objectsInNotification,
} from '../../../functions/shared/notify/s3-events.ts';
import { parseUploadKey } from '../../../functions/shared/storage/object-keys.ts';

/** Fixed, so a failure reproduces; run counts keep this file under a second. */
const SEED = 20_261_214;

/** Well-formed S3 keys: any Unicode text (no lone surrogates), with the characters encoding trips on. */
const key = fc
  .array(
    fc.oneof(
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.constantFrom('+', ' ', '%', '%20', '%2B', '/', "!'()*~", 'é', '😀', '\u0000', '..'),
    ),
    { minLength: 1, maxLength: 12 },
  )
  .map((parts) => parts.join(''));

const s3Event = (records: unknown[]) => JSON.stringify({ Records: records });
const created = (encodedKey: unknown, extra: Record<string, unknown> = {}) => ({
  eventName: 'ObjectCreated:Put',
  s3: { bucket: { name: 'uploads-bucket' }, object: { key: encodedKey, size: 1, ...extra } },
});

describe('S3 event keys, fuzzed', () => {
  it('decode to the key that was encoded, as S3 encodes them', () => {
    fc.assert(
      fc.property(key, (k) => {
        const encoded = encodeEventKey(k);
        // What S3 puts on the wire: no space, no `%` but escapes, `/` kept.
        expect(encoded).not.toMatch(/ |%(?![0-9A-F]{2})/);
        expect(decodeEventKey(encoded)).toBe(k);
        expect(objectsInNotification(s3Event([created(encoded)]))).toEqual([
          { bucket: 'uploads-bucket', key: k },
        ]);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('never throws on an arbitrary encoded key, and yields no upload key from one the pipeline did not make', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 60 }), (raw) => {
        const decoded = decodeEventKey(raw);
        if (decoded !== undefined && parseUploadKey('uploads/', decoded)) {
          // Only the pipeline's own shape parses: prefix, two ULIDs.
          expect(decoded).toMatch(/^uploads\/[0-9A-Z]{26}\/[0-9A-Z]{26}$/);
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
    expect(decodeEventKey('uploads/%ZZ')).toBeUndefined();
    expect(decodeEventKey('%ED%A0%80')).toBeUndefined();
    expect(decodeEventKey('a'.repeat(5000))).toBeUndefined();
  });

  it('never throws on an arbitrary message body, and names only well-formed created objects', () => {
    const record = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      fc.record(
        {
          eventName: fc.oneof(fc.constantFrom('ObjectCreated:Put', 'ObjectRemoved:Delete'), fc.jsonValue()),
          s3: fc.oneof(
            fc.jsonValue({ maxDepth: 3 }),
            fc.record({
              bucket: fc.oneof(fc.record({ name: fc.jsonValue() }), fc.jsonValue()),
              object: fc.oneof(
                fc.record({ key: fc.oneof(fc.string(), fc.jsonValue()), eTag: fc.jsonValue() }),
                fc.jsonValue(),
              ),
            }),
          ),
        },
        { requiredKeys: [] },
      ),
    );
    const body = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? ''),
      fc.array(record, { maxLength: 5 }).map((records) => s3Event(records)),
    );
    fc.assert(
      fc.property(body, (text) => {
        const objects = objectsInNotification(text);
        for (const object of objects) {
          expect(typeof object.bucket).toBe('string');
          expect(typeof object.key).toBe('string');
          if (object.etag !== undefined) expect(object.etag).not.toContain('"');
        }
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it('encodes a key exactly as S3 does: space as +, / kept, the rest of Java form-encoding percent-escaped', () => {
    expect(encodeEventKey("uploads/a b!'()*~é+%.jpg")).toBe('uploads/a+b%21%27%28%29*%7E%C3%A9%2B%25.jpg');
  });

  it('decodes the longest key S3 can name (1,024 bytes, all escaped) and nothing longer', () => {
    const longest = 'é'.repeat(512); // 1,024 bytes of UTF-8, 3,072 characters encoded
    expect(encodeEventKey(longest)).toHaveLength(3 * 1024);
    expect(decodeEventKey(encodeEventKey(longest))).toBe(longest);
    expect(decodeEventKey(`${encodeEventKey(longest)}a`)).toBeUndefined();
  });

  it('carries the ETag of the bytes the event tells of, without quotes', () => {
    expect(objectsInNotification(s3Event([created('uploads/a', { eTag: '"abc123"' })]))).toEqual([
      { bucket: 'uploads-bucket', key: 'uploads/a', etag: 'abc123' },
    ]);
  });
});
