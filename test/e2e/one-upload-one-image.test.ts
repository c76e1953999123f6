import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, putUpload, type UploadItem } from '../support/api-client.ts';
import { localS3Client } from '../support/local-clients.ts';
import { removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

const UPLOADS = 'photo-intake-uploads';
const VARIANTS = 'photo-intake-variants';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * Two different JPEGs of the same length (640x480 and 600x450, the shorter padded after its end
 * marker, which decoders ignore): one upload URL accepts either, since it pins the length, not the bytes.
 */
async function sameSizePair(seed: number): Promise<[Buffer, Buffer]> {
  const noise = (width: number, height: number) =>
    sharp(Buffer.from(Array.from({ length: width * height * 3 }, (_, i) => (i * 7 + seed * 31) % 251)), {
      raw: { width, height, channels: 3 },
    })
      .jpeg({ quality: 80 })
      .toBuffer();
  const [a, b] = await Promise.all([noise(640, 480), noise(600, 450)]);
  const size = Math.max(a.length, b.length);
  const pad = (bytes: Buffer) => Buffer.concat([bytes, Buffer.alloc(size - bytes.length)]);
  return [pad(a), pad(b)];
}

/** An upload URL stores at most one set of bytes (contract v2), whatever the order of PUTs and events. */
describe('one upload URL, one image', () => {
  let stack: StackProcess;
  let s3: S3Client;
  const api = () => apiClient(stack.url, 'mallory');

  beforeAll(async () => {
    stack = await startStackProcess({ env: { OPTIMIZER_CONCURRENCY: '2' } });
    s3 = localS3Client(stack.s3Endpoint);
  });
  afterAll(async () => {
    s3?.destroy();
    await stack?.stop();
    if (stack) await removeDir(stack.dataDir);
  });

  const keysUnder = async (bucket: string, prefix: string) =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map(
      (object) => object.Key ?? '',
    );
  const read = async (bucket: string, key: string) => {
    const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (!Body) throw new Error(`no body for ${key}`);
    return Buffer.from(await Body.transformToByteArray());
  };
  const uploadKeyOf = (batchId: string, item: UploadItem) => `uploads/${batchId}/${item.imageId}`;

  /** Waits until `check` holds (the pipeline removes late bytes asynchronously). */
  async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}\n${stack.logs()}`);
      await sleep(150);
    }
  }

  /**
   * The record, the kept original and the variant files describe the same bytes: the original's
   * dimensions are the record's, every variant file has the dimensions the record gives it, and the
   * image's folder holds nothing the record does not name.
   */
  async function expectConsistent(imageId: string, candidates: readonly Buffer[]) {
    const image = (await api().request('GET', `/v1/images/${imageId}`)).body;
    expect(image.status).toBe('ready');
    const files = await keysUnder(VARIANTS, `${imageId}/`);
    const originals = files.filter((key) => key.endsWith('/original'));
    expect(originals).toHaveLength(1);
    const original = await read(VARIANTS, originals[0] ?? '');
    expect(candidates.map(sha256)).toContain(sha256(original));
    const meta = await sharp(original).metadata();
    expect([meta.width, meta.height]).toEqual([image.width, image.height]);
    expect(image.size).toBe(original.length);
    for (const variant of image.variants as { width: number; height: number; url: string }[]) {
      const bytes = Buffer.from(await (await fetch(variant.url)).arrayBuffer());
      const made = await sharp(bytes).metadata();
      expect([made.width, made.height]).toEqual([variant.width, variant.height]);
    }
    // The folder holds exactly the record's files: no variant of the other bytes is left.
    expect(files.length).toBe(image.variants.length + 1);
    return image;
  }

  it('keeps the processed bytes when different bytes of the same size are PUT after ready', async () => {
    const [first, second] = await sameSizePair(1);
    const batch = await api().createBatch([{ name: 'a.jpg', type: 'image/jpeg', size: first.length }]);
    const item = batch.items[0] as UploadItem;
    expect((await putUpload(item, first)).status).toBe(200);
    await api().waitForBatch(batch.batchId);
    const before = await expectConsistent(item.imageId ?? '', [first]);
    expect([before.width, before.height]).toEqual([640, 480]);
    // The processed original is not kept at the upload key, where a re-PUT (which also sets the
    // `incoming` tag the abandoned-upload lifecycle rule acts on) could replace or expire it.
    expect(await stack.objectExists(UPLOADS, uploadKeyOf(batch.batchId, item))).toBe(false);

    expect((await putUpload(item, second)).status).toBe(200);
    await eventually(
      async () => !(await stack.objectExists(UPLOADS, uploadKeyOf(batch.batchId, item))),
      'the late PUT is removed',
    );
    const after = await expectConsistent(item.imageId ?? '', [first]);
    expect(after).toMatchObject({ width: 640, height: 480, updatedAt: before.updatedAt });
  });

  it('keeps nothing PUT after DELETE, whether the image was ready or still pending', async () => {
    const [bytes] = await sameSizePair(2);
    const batch = await api().createBatch([
      { name: 'ready.jpg', type: 'image/jpeg', size: bytes.length },
      { name: 'pending.jpg', type: 'image/jpeg', size: bytes.length },
    ]);
    const [ready, pending] = batch.items as [UploadItem, UploadItem];
    expect((await putUpload(ready, bytes)).status).toBe(200);
    await eventually(
      async () => (await api().request('GET', `/v1/images/${ready.imageId}`)).body.status === 'ready',
      'the first image is ready',
    );
    for (const item of [ready, pending]) {
      expect((await api().request('DELETE', `/v1/images/${item.imageId}`)).status).toBe(204);
    }
    for (const item of [ready, pending]) {
      // The URL still verifies (storage knows nothing of records), but what it stores is not kept.
      expect((await putUpload(item, bytes)).status).toBe(200);
    }
    for (const item of [ready, pending]) {
      await eventually(
        async () =>
          !(await stack.objectExists(UPLOADS, uploadKeyOf(batch.batchId, item))) &&
          (await keysUnder(VARIANTS, `${item.imageId}/`)).length === 0,
        `nothing of ${item.imageId} is kept`,
      );
      expect((await api().request('GET', `/v1/images/${item.imageId}`)).status).toBe(404);
    }
  });

  it('ends with one consistent image when two different files are PUT to one URL while it is processed', async () => {
    for (let run = 0; run < 4; run++) {
      const pairs = await Promise.all([0, 1, 2, 3].map((i) => sameSizePair(10 + run * 4 + i)));
      const batch = await api().createBatch(
        pairs.map(([a], i) => ({ name: `race-${i}.jpg`, type: 'image/jpeg', size: a.length })),
      );
      await Promise.all(
        batch.items.map(async (item, i) => {
          const [a, b] = pairs[i] as [Buffer, Buffer];
          expect((await putUpload(item, a)).status).toBe(200);
          await sleep(i * 40);
          expect((await putUpload(item, b)).status).toBe(200);
        }),
      );
      await api().waitForBatch(batch.batchId);
      for (const [i, item] of batch.items.entries()) {
        const uploadKey = uploadKeyOf(batch.batchId, item);
        await eventually(async () => !(await stack.objectExists(UPLOADS, uploadKey)), 'the inbox is emptied');
        // Let a losing attempt finish removing its files, then check.
        await eventually(
          async () =>
            (await keysUnder(VARIANTS, `${item.imageId}/`)).filter((k) => k.endsWith('/original')).length ===
            1,
          'one original is left',
        );
        await expectConsistent(item.imageId ?? '', pairs[i] as [Buffer, Buffer]);
      }
    }
  });
});
