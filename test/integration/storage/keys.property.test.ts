import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type S3Server, startS3Server } from '../../../local/emulators/s3.ts';
import { encodeSegment, rawS3Request } from '../../support/raw-s3.ts';

const BUCKET = 'prop-one';
const OTHER = 'prop-two';
/** Fixed, so a failure reproduces; the run count keeps this file to a few seconds. */
const SEED = 20_261_201;
const RUNS = 100;

/** Pieces that path handling trips on, mixed with arbitrary text. */
const piece = fc.oneof(
  fc.constantFrom('.', '..', '/', '//', '\\', '%', '%2e', '%2E%2e', '%2f', '%5c', '%00', '\0', '~'),
  fc.constantFrom(
    '._S3rver_object',
    '._S3rver_uploads',
    '.staging-',
    'uploads',
    OTHER,
    ' ',
    '?',
    '#',
    '+',
    'é',
    '😀',
  ),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.string({ unit: 'binary-ascii', maxLength: 3 }),
);
/** S3 keys are 1 to 1024 bytes; an empty one would address the bucket itself. */
const keyArbitrary = fc
  .oneof(
    { weight: 9, arbitrary: fc.array(piece, { minLength: 1, maxLength: 10 }).map((parts) => parts.join('')) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 200, maxLength: 1100 }) },
  )
  .filter((key) => key.length > 0);

/**
 * How the key goes on the wire: `encoded` as the SDK sends it (each segment percent-encoded), or
 * `raw`, as written, so that `..`, `%2e%2e` and `%2f` reach the server's own decoding. Only what
 * HTTP cannot carry is escaped, and a `%` is left alone when it starts an ASCII escape.
 */
function toPath(key: string, form: 'encoded' | 'raw'): string {
  if (form === 'encoded') return `/${BUCKET}/${key.split('/').map(encodeSegment).join('/')}`;
  const raw = key.replace(/%(?![0-7][0-9a-fA-F])|[^A-Za-z0-9\-._~!$&'()*+,;=:@/\\%]/gu, (c) =>
    encodeURIComponent(c),
  );
  return `/${BUCKET}/${raw}`;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

describe('the local S3 server, for arbitrary keys (property)', () => {
  let dataDir: string;
  let server: S3Server;
  let outsideBefore: string[];
  const outsideBucket = async () =>
    (await filesUnder(dataDir)).filter((file) => !file.startsWith(`s3${sep}${BUCKET}${sep}`));

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'keys-property-'));
    await mkdir(join(dataDir, 'dynamodb'));
    await writeFile(join(dataDir, 'dynamodb', 'records'), 'records');
    server = await startS3Server({ directory: join(dataDir, 's3'), buckets: [BUCKET, OTHER] });
    outsideBefore = await outsideBucket();
  });
  afterAll(async () => {
    await server?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('never writes outside the bucket folder, never answers 5xx, and keeps what it accepts as sent', async () => {
    const outcomes = { stored: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(keyArbitrary, fc.constantFrom('encoded', 'raw'), async (key, form) => {
        const path = toPath(key, form);
        const body = `bytes of ${JSON.stringify(key)}`;
        const put = await rawS3Request(server.endpoint, 'PUT', path, { body });
        const got = await rawS3Request(server.endpoint, 'GET', path);
        const deleted = await rawS3Request(server.endpoint, 'DELETE', path);
        for (const [method, response] of Object.entries({ put, got, deleted })) {
          expect(response.status, `${method}: ${response.body}`).toBeLessThan(500);
        }
        if (put.status === 200) {
          outcomes.stored += 1;
          expect(got).toEqual({ status: 200, body });
          expect(deleted.status).toBe(204);
        } else {
          outcomes.refused += 1;
          expect(put.status, put.body).toBe(400);
        }
        expect(await outsideBucket()).toEqual(outsideBefore);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    // The property means something only if both branches were taken often.
    expect(outcomes.stored).toBeGreaterThan(RUNS / 5);
    expect(outcomes.refused).toBeGreaterThan(RUNS / 10);
  });
});
