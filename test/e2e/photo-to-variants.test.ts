import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type LocalFile, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import { removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

// Three real photos; Landscape_6 carries EXIF orientation 6 and is 450x600 as stored, 600x450 upright.
const PHOTOS = [
  { file: 'valid/sharp--Landscape_6.jpg', upright: { width: 600, height: 450 } },
  { file: 'valid/exif-samples--DSCN0010.jpg', upright: { width: 640, height: 480 } },
  { file: 'valid/sharp--2569067123_aca715a2ee_o.jpg', upright: { width: 2725, height: 2225 } },
];

describe('a batch of photos, from presigned upload to ready variants, on the local stack', () => {
  let stack: StackProcess;
  let files: LocalFile[];

  beforeAll(async () => {
    stack = await startStackProcess();
    files = await Promise.all(PHOTOS.map((photo) => loadFile(corpusFile(photo.file))));
  });

  afterAll(async () => {
    const code = await stack?.stop('SIGTERM');
    if (stack) await removeDir(stack.dataDir);
    expect(code, 'the stack stops cleanly on SIGTERM').toBe(0);
  });

  it('answers health without a token', async () => {
    const response = await fetch(`${stack.url}/v1/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('turns every uploaded photo into upright, metadata-free variants', async () => {
    const api = apiClient(stack.url, 'alice');
    const batch = await api.createBatch(files);
    expect(batch.items.map((item) => item.status)).toEqual(['pending', 'pending', 'pending']);

    const puts = await Promise.all(
      batch.items.map((item, i) => putUpload(item, (files[i] as LocalFile).bytes)),
    );
    expect(puts.map((put) => put.status)).toEqual([200, 200, 200]);

    const done = await api.waitForBatch(batch.batchId);
    expect(done.counts).toMatchObject({ ready: 3, failed: 0 });
    expect(done.total).toBe(3);

    for (const [i, photo] of PHOTOS.entries()) {
      const imageId = batch.items[i]?.imageId as string;
      const { status, body: image } = await api.request('GET', `/v1/images/${imageId}`);
      expect(status).toBe(200);
      expect(image).toMatchObject({
        status: 'ready',
        name: files[i]?.name,
        format: 'jpeg',
        ...photo.upright,
      });
      expect(image.placeholder).toEqual(expect.any(String));
      expect(image.variants.length).toBeGreaterThanOrEqual(2);

      for (const variant of image.variants) {
        // Variant URLs work with a plain GET, no headers.
        const download = await fetch(variant.url);
        expect(download.status, `${photo.file} ${variant.name}`).toBe(200);
        const bytes = Buffer.from(await download.arrayBuffer());
        const meta = await sharp(bytes).metadata();
        expect(meta.format).toBe(variant.format);
        expect([meta.width, meta.height]).toEqual([variant.width, variant.height]);
        expect(bytes.length).toBe(variant.size);
        // Upright: same orientation as the upright source, and nothing left to rotate.
        expect(variant.width >= variant.height).toBe(photo.upright.width >= photo.upright.height);
        expect(meta.orientation).toBeUndefined();
        expect(meta.exif).toBeUndefined();
        expect(meta.xmp).toBeUndefined();
        expect(meta.iptc).toBeUndefined();
        expect(variant.width).toBeLessThanOrEqual(photo.upright.width);
      }
    }
  });
});
