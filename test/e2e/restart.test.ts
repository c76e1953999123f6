import { readFile } from 'node:fs/promises';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { variantFileName } from '../../functions/shared/storage/object-keys.ts';
import { DEFAULT_VARIANTS } from '../../functions/shared/variants.ts';
import { eventLogPath } from '../../local/glue/events.ts';
import { apiClient, type CreatedBatch, type LocalFile, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import { localS3Client } from '../support/local-clients.ts';
import { recordsOnDisk, removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

const PHOTOS = [1, 2, 3, 4, 5, 6, 7, 8].flatMap((n) => [`valid/sharp--Landscape_${n}.jpg`]);
// Short timeouts so that work a crash left in flight comes back within the test.
const ENV = { QUEUE_VISIBILITY_TIMEOUT_SECONDS: '3', OPTIMIZER_CONCURRENCY: '1' };

/** Many distinct files: the corpus photos, each made unique by a trailing byte (JPEG ignores it). */
async function distinctPhotos(count: number): Promise<LocalFile[]> {
  const base = await Promise.all(PHOTOS.map((file) => loadFile(corpusFile(file))));
  return Array.from({ length: count }, (_, i) => {
    const source = base[i % base.length] as LocalFile;
    const bytes = Buffer.concat([source.bytes, Buffer.from([i % 256, Math.floor(i / 256)])]);
    return { ...source, name: `photo-${i}.jpg`, bytes, size: bytes.length, sha256: '' };
  });
}

async function uploadAll(stack: StackProcess, owner: string, files: LocalFile[]): Promise<CreatedBatch> {
  const api = apiClient(stack.url, owner);
  const batch = await api.createBatch(files.map(({ sha256: _, ...file }) => file));
  const puts = await Promise.all(
    batch.items.map((item, i) => putUpload(item, (files[i] as LocalFile).bytes)),
  );
  expect(puts.every((put) => put.status === 200)).toBe(true);
  return batch;
}

async function countsOf(stack: StackProcess, owner: string, batchId: string) {
  const { body } = await apiClient(stack.url, owner).request('GET', `/v1/batches/${batchId}?limit=1`);
  return body.counts as Record<string, number>;
}
/** The variant objects stored for an image. */
async function storedVariantKeys(stack: StackProcess, imageId: string): Promise<string[]> {
  const s3 = localS3Client(stack.s3Endpoint);
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: 'photo-intake-variants', Prefix: `${imageId}/` }),
  );
  s3.destroy();
  return (listed.Contents ?? []).map((object) => object.Key as string).sort();
}

/** Every image of the batch is ready and each of its variants can be downloaded. */
async function expectAllReady(stack: StackProcess, owner: string, batch: CreatedBatch) {
  const api = apiClient(stack.url, owner);
  const done = await api.waitForBatch(batch.batchId, 90_000);
  expect(done.counts).toMatchObject({ ready: batch.items.length, failed: 0, pending: 0 });
  for (const item of done.items) {
    for (const variant of item.variants) expect((await fetch(variant.url)).status).toBe(200);
  }
  return done;
}

/** The events the stack handed to its events port for one batch, once the relay has caught up. */
async function eventsOf(stack: StackProcess, batchId: string) {
  const read = async () =>
    (await readFile(eventLogPath(stack.dataDir), 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { type: string; batchId: string; imageId?: string })
      .filter((event) => event.batchId === batchId);
  for (let i = 0; i < 50 && !(await read()).some((e) => e.type === 'batch.completed'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return read();
}

describe('the local stack across restarts', () => {
  let stacks: StackProcess[] = [];
  afterEach(async () => {
    for (const stack of stacks) await stack.stop('SIGKILL');
    if (stacks[0]) await removeDir(stacks[0].dataDir);
    stacks = [];
  });

  it('finishes every image after being killed (SIGKILL) in the middle of a batch', async () => {
    const first = await startStackProcess({ env: ENV });
    stacks.push(first);
    const files = await distinctPhotos(24);
    const batch = await uploadAll(first, 'kill', files);
    // Kill it once some of the batch is done and an image is being processed.
    for (let i = 0; i < 600; i++) {
      const counts = await countsOf(first, 'kill', batch.batchId);
      if (counts.ready && counts.ready > 0 && counts.processing && counts.processing > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await first.stop('SIGKILL');
    // What the kill left on disk: work in flight (an image in `processing`), and work not done.
    const atKill = await recordsOnDisk(first.dataDir, batch.batchId);
    const inFlight = atKill.filter((item) => item.status === 'processing').map((item) => item.imageId);
    expect(inFlight.length).toBeGreaterThan(0);
    expect(atKill.filter((item) => item.status === 'ready').length).toBeLessThan(files.length);

    const second = await startStackProcess({ dataDir: first.dataDir, env: ENV });
    stacks.push(second);
    const done = await expectAllReady(second, 'kill', batch);
    // Every image has exactly the configured variants, in the record and in storage: the kill left
    // neither a missing nor an extra one.
    // Each image's files are in one folder: exactly the configured variants and the original.
    const expectedFiles = [...DEFAULT_VARIANTS.map((spec) => variantFileName(spec)), 'original'].sort();
    for (const item of done.items as { imageId: string; variants: { name: string }[] }[]) {
      expect(item.variants.map((v) => v.name)).toEqual(DEFAULT_VARIANTS.map((spec) => spec.name));
      const keys = await storedVariantKeys(second, item.imageId);
      expect(new Set(keys.map((key) => key.split('/').slice(0, 2).join('/'))).size).toBe(1);
      expect(keys.map((key) => key.split('/').at(-1)).sort()).toEqual(expectedFiles);
    }
    // The events port got each "image finished" and the "batch completed" exactly once, whatever the
    // kill interrupted (they are recorded in the same transaction as the move they tell of).
    const events = await eventsOf(second, batch.batchId);
    expect(
      events
        .filter((e) => e.type === 'image.ready')
        .map((e) => e.imageId)
        .sort(),
    ).toEqual(batch.items.map((item) => item.imageId).sort());
    expect(events.filter((e) => e.type === 'batch.completed')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'image.failed')).toHaveLength(0);

    // The work the kill interrupted was started again after it: a second attempt, one outcome.
    expect(await second.stop('SIGTERM')).toBe(0);
    const after = await recordsOnDisk(first.dataDir, batch.batchId);
    for (const imageId of inFlight) {
      expect(after.find((item) => item.imageId === imageId)).toMatchObject({ status: 'ready' });
      expect(after.find((item) => item.imageId === imageId)?.attempts).toBeGreaterThanOrEqual(2);
    }
  });

  it('stops cleanly on SIGTERM mid-batch and carries on when started again', async () => {
    const first = await startStackProcess({ env: ENV });
    stacks.push(first);
    const files = await distinctPhotos(16);
    const batch = await uploadAll(first, 'term', files);
    expect(await first.stop('SIGTERM')).toBe(0);
    const second = await startStackProcess({ dataDir: first.dataDir, env: ENV });
    stacks.push(second);
    await expectAllReady(second, 'term', batch);
  });

  it('finishes a batch killed right after its uploads landed', async () => {
    const first = await startStackProcess({ env: { ...ENV, OPTIMIZER_CONCURRENCY: '1' } });
    stacks.push(first);
    const files = await distinctPhotos(6);
    const batch = await uploadAll(first, 'lost', files);
    // Killed at once: notifications in flight and queued work may be lost or half done.
    await first.stop('SIGKILL');
    const second = await startStackProcess({ dataDir: first.dataDir, env: ENV });
    stacks.push(second);
    await expectAllReady(second, 'lost', batch);
  });
});
