import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type S3Server, startS3Server } from '../../../local/emulators/s3.ts';
import { localS3Client } from '../../support/local-clients.ts';
import { rawS3Request } from '../../support/raw-s3.ts';

const BUCKET = 'keys-one';
const OTHER = 'keys-two';

/** Every file under `dir`, as paths relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/**
 * Keys are data: a key that names a path outside its bucket's folder is refused (or kept inside
 * it as a plain name), whatever the request. The data directory holds the S3 server's folder
 * (`s3/`) and, beside it, a file standing for the other servers' state.
 */
describe('the local S3 server keeps every key inside its bucket', () => {
  let dataDir: string;
  let server: S3Server;
  let client: S3Client;
  let outsideBefore: string[];

  /** Files outside this bucket's folder: the rest of DATA_DIR and the other bucket. */
  const outsideBucket = async () =>
    (await filesUnder(dataDir)).filter((file) => !file.startsWith(`s3${sep}${BUCKET}${sep}`));

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'keys-'));
    await mkdir(join(dataDir, 'dynamodb'));
    await writeFile(join(dataDir, 'dynamodb', 'records'), 'records');
    server = await startS3Server({ directory: join(dataDir, 's3'), buckets: [BUCKET, OTHER] });
    client = localS3Client(server.endpoint);
    await client.send(new PutObjectCommand({ Bucket: OTHER, Key: 'secret', Body: 'the other bucket' }));
    outsideBefore = await outsideBucket();
  });
  beforeEach(async () => {
    expect(await outsideBucket()).toEqual(outsideBefore);
  });
  afterAll(async () => {
    client?.destroy();
    await server?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const expectNothingOutside = async () => {
    expect(await outsideBucket()).toEqual(outsideBefore);
    expect(await readFile(join(dataDir, 'dynamodb', 'records'), 'utf8')).toBe('records');
    const secret = await client.send(new GetObjectCommand({ Bucket: OTHER, Key: 'secret' }));
    expect(await secret.Body?.transformToString()).toBe('the other bucket');
  };

  it.each([
    ['parent segments', `/${BUCKET}/../../../x`],
    ['a climb into the other bucket', `/${BUCKET}/uploads/../../${OTHER}/x`],
    ['encoded dots', `/${BUCKET}/%2e%2e/%2e%2e/%2e%2e/x`],
    ['encoded dots into the other bucket', `/${BUCKET}/%2E%2E/${OTHER}/x`],
    ['encoded slashes', `/${BUCKET}/..%2f..%2f..%2fx`],
    ['a lone dot', `/${BUCKET}/./x`],
    ['an absolute key', `/${BUCKET}//etc/x`],
    ['NUL', `/${BUCKET}/x%00.jpg`],
    ['a segment naming s3rver files', `/${BUCKET}/x._S3rver_object/y`],
    ['a bucket of ..', '/%2e%2e/x'],
    ['a bucket with slashes', `/${BUCKET}%2f..%2f..%2fx/y`],
  ])('refuses a PUT with %s (400), creating nothing', async (_, path) => {
    const response = await rawS3Request(server.endpoint, 'PUT', path, { body: 'escaped?' });
    expect(response.status).toBe(400);
    expect(response.body).toMatch(/<Code>(InvalidArgument|InvalidBucketName)<\/Code>/);
    await expectNothingOutside();
  });

  it('stores a key with backslashes inside the bucket, as the plain name it is on this OS', async () => {
    const response = await rawS3Request(server.endpoint, 'PUT', `/${BUCKET}/..%5C..%5C..%5Cx`, {
      body: 'a name',
    });
    expect(response.status).toBe(200);
    const stored = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: '..\\..\\..\\x' }));
    expect(await stored.Body?.transformToString()).toBe('a name');
    await expectNothingOutside();
  });

  it('refuses GET, HEAD and DELETE of a key that climbs into the other bucket', async () => {
    for (const method of ['GET', 'HEAD', 'DELETE']) {
      const response = await rawS3Request(server.endpoint, method, `/${BUCKET}/../${OTHER}/secret`);
      expect(response.status, method).toBe(400);
      expect(response.body).not.toContain('the other bucket');
    }
    await expectNothingOutside();
  });

  it('refuses a copy from or to a key outside the bucket', async () => {
    const from = await rawS3Request(server.endpoint, 'PUT', `/${BUCKET}/copied`, {
      headers: { 'x-amz-copy-source': `/${BUCKET}/../${OTHER}/secret` },
    });
    expect(from.status).toBe(400);
    const to = await rawS3Request(server.endpoint, 'PUT', `/${BUCKET}/../../x`, {
      headers: { 'x-amz-copy-source': `/${OTHER}/secret` },
    });
    expect(to.status).toBe(400);
    const undecodable = await rawS3Request(server.endpoint, 'PUT', `/${BUCKET}/copied`, {
      headers: { 'x-amz-copy-source': `/${OTHER}/%ZZ` },
    });
    expect(undecodable.status).toBe(400);
    expect(await filesUnder(join(dataDir, 's3', BUCKET))).not.toContain('copied._S3rver_object');
    await expectNothingOutside();
  });

  it('refuses a multi-object delete naming a key outside the bucket', async () => {
    const error = await client
      .send(
        new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: `../${OTHER}/secret` }] } }),
      )
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ $metadata: { httpStatusCode: 400 } });
    await expectNothingOutside();
  });

  it('lists only the bucket, whatever the prefix', async () => {
    for (const prefix of ['../', `../${OTHER}/`, '%2e%2e/']) {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
      expect(listed.Contents ?? []).toEqual([]);
    }
  });

  it('refuses an upload id or part number that is not one, creating nothing', async () => {
    const badId = await rawS3Request(server.endpoint, 'PUT', `/${BUCKET}/part`, {
      query: { partNumber: '1', uploadId: '../../../../x' },
      body: 'a part',
    });
    expect(badId.status).toBe(404);
    const badPart = await rawS3Request(server.endpoint, 'PUT', `/${BUCKET}/part`, {
      query: { partNumber: '../../x', uploadId: 'a'.repeat(32) },
      body: 'a part',
    });
    expect(badPart.status).toBe(400);
    await expectNothingOutside();
  });
});
