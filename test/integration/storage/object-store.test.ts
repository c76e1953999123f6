import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ObjectNotFoundError,
  ObjectTooLargeError,
  S3ObjectStore,
} from '../../../functions/shared/storage/s3-object-store.ts';
import { type S3Server, startS3Server } from '../../../local/emulators/s3.ts';
import { localS3Client } from '../../support/local-clients.ts';

const BUCKET = 'object-store-test';

describe('S3ObjectStore against the local S3 server', () => {
  let directory: string;
  let server: S3Server;
  let client: S3Client;
  let store: S3ObjectStore;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'object-store-'));
    server = await startS3Server({ directory, buckets: [BUCKET] });
    client = localS3Client(server.endpoint);
    store = new S3ObjectStore(client);
  });

  afterAll(async () => {
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('puts, heads and gets an object', async () => {
    const body = Buffer.from('variant bytes');
    await store.put(BUCKET, 'variants/a/thumb.webp', body, 'image/webp');

    expect(await store.head(BUCKET, 'variants/a/thumb.webp')).toMatchObject({ size: body.length });
    const object = await store.get(BUCKET, 'variants/a/thumb.webp', body.length);
    // The ETag S3 gives a single PUT: the MD5 of the bytes, without quotes.
    const md5 = createHash('md5').update(body).digest('hex');
    expect(object).toEqual({ body, contentType: 'image/webp', size: body.length, etag: md5 });
  });

  it('copies an object that still has the ETag it was read with, and refuses one that changed', async () => {
    await store.put(BUCKET, 'inbox/b-1/i 1.jpg', Buffer.from('first bytes'), 'application/octet-stream');
    const read = await store.get(BUCKET, 'inbox/b-1/i 1.jpg', 100);
    const from = { bucket: BUCKET, key: 'inbox/b-1/i 1.jpg', etag: read.etag ?? '' };

    expect(await store.copyIfUnchanged(from, { bucket: BUCKET, key: 'kept/one' }, 'image/jpeg')).toBe(true);
    const copy = await store.get(BUCKET, 'kept/one', 100);
    expect(copy).toMatchObject({ body: Buffer.from('first bytes'), contentType: 'image/jpeg' });

    // A later PUT replaced the bytes: nothing is copied, and the caller is told.
    await store.put(BUCKET, 'inbox/b-1/i 1.jpg', Buffer.from('second bytes'), 'image/jpeg');
    expect(await store.copyIfUnchanged(from, { bucket: BUCKET, key: 'kept/two' }, 'image/jpeg')).toBe(false);
    expect(await store.head(BUCKET, 'kept/two')).toBeUndefined();
    // So is a source that is gone.
    await store.delete(BUCKET, ['inbox/b-1/i 1.jpg']);
    expect(await store.copyIfUnchanged(from, { bucket: BUCKET, key: 'kept/three' }, 'image/jpeg')).toBe(
      false,
    );
  });

  it('refuses to read an object larger than maxBytes', async () => {
    await store.put(BUCKET, 'uploads/big.jpg', Buffer.alloc(2048, 1), 'image/jpeg');

    const error = await store.get(BUCKET, 'uploads/big.jpg', 2047).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObjectTooLargeError);
    expect(error).toMatchObject({ code: 'ObjectTooLarge', size: 2048, maxBytes: 2047 });
  });

  it('reports a missing object as ObjectNotFoundError from get and undefined from head', async () => {
    const error = await store.get(BUCKET, 'uploads/none.jpg', 10).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObjectNotFoundError);
    expect(error).toMatchObject({ code: 'ObjectNotFound', bucket: BUCKET, key: 'uploads/none.jpg' });
    expect(await store.head(BUCKET, 'uploads/none.jpg')).toBeUndefined();
  });

  it('lists every key under a prefix and deletes them in requests of at most 1000 keys', async () => {
    const keys = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, '0')}.webp`);
    for (let start = 0; start < keys.length; start += 50) {
      await Promise.all(
        keys.slice(start, start + 50).map((key) => store.put(BUCKET, key, Buffer.from(key), 'image/webp')),
      );
    }
    await store.put(BUCKET, 'other/keep.webp', Buffer.from('keep'), 'image/webp');

    const listed: string[] = [];
    for await (const key of store.list(BUCKET, 'many/')) listed.push(key);
    expect(listed.sort()).toEqual(keys);

    const send = vi.spyOn(client, 'send');
    await store.delete(BUCKET, [...keys, 'many/absent.webp']);
    const batches = send.mock.calls
      .map(([command]) => command)
      .filter((command) => command instanceof DeleteObjectsCommand)
      .map((command) => command.input.Delete?.Objects?.length);
    send.mockRestore();
    expect(batches).toEqual([1000, 6]);
    const left: string[] = [];
    for await (const key of store.list(BUCKET, 'many/')) left.push(key);
    expect(left).toEqual([]);
    expect(await store.head(BUCKET, 'other/keep.webp')).toMatchObject({ size: 4 });
  });

  it('deletes nothing when given no keys', async () => {
    await store.delete(BUCKET, []);
    expect(await store.head(BUCKET, 'other/keep.webp')).toMatchObject({ size: 4 });
  });
});
