import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageItem } from '../../functions/shared/records/types.ts';
import { apiClient, type LocalFile, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile, expectations } from '../support/corpus.ts';
import { recordsOnDisk, removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

/**
 * Every file of the shared corpus, valid and hostile, uploaded through the local stack as a client
 * would (declaring a type by extension; disguised files are declared as JPEG), ends as
 * `expected.json` says, and no ready variant carries metadata.
 */
describe('the corpus through the local stack', () => {
  const expected = Object.entries(expectations());
  let stack: StackProcess;
  let files: LocalFile[];
  let outcomes: Map<string, { status: string; error?: { code: string }; variants?: { url: string }[] }>;
  /** The bytes of every ready variant, by corpus file, fetched while the stack ran. */
  const variantBytes = new Map<string, Buffer[]>();
  /** The records the stack left once stopped, by corpus file. */
  let records: Map<string, ImageItem>;

  beforeAll(async () => {
    stack = await startStackProcess();
    files = await Promise.all(expected.map(([name]) => loadFile(corpusFile(name))));
    const api = apiClient(stack.url, 'corpus');
    // One batch, as an app sending a camera roll would: a broken file must fail alone.
    const batch = await api.createBatch(files.map(({ sha256: _, ...file }) => file));
    expect(batch.items.every((item) => item.status === 'pending')).toBe(true);
    const puts = await Promise.all(
      batch.items.map((item, i) => putUpload(item, (files[i] as LocalFile).bytes)),
    );
    expect(puts.every((put) => put.status === 200)).toBe(true);
    const done = await api.waitForBatch(batch.batchId, 150_000);
    outcomes = new Map(
      done.items.map((item: { index: number; status: string }) => [
        expected[item.index]?.[0] as string,
        item,
      ]),
    );
    for (const [name, outcome] of outcomes) {
      const urls = outcome.status === 'ready' ? (outcome.variants ?? []).map((v) => v.url) : [];
      variantBytes.set(
        name,
        await Promise.all(urls.map(async (url) => Buffer.from(await (await fetch(url)).arrayBuffer()))),
      );
    }
    // Stopped cleanly, the stack's records can be read from its DATA_DIR.
    expect(await stack.stop('SIGTERM')).toBe(0);
    const byId = new Map(batch.items.map((item) => [item.imageId, expected[item.index]?.[0] as string]));
    records = new Map(
      (await recordsOnDisk(stack.dataDir, batch.batchId)).map((item) => [
        byId.get(item.imageId) as string,
        item,
      ]),
    );
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    if (stack) await removeDir(stack.dataDir);
  });

  it.each(expected)('%s ends as expected', async (name, expectation) => {
    const outcome = outcomes.get(name);
    expect(outcome, name).toBeDefined();
    if (!outcome) return;
    if (expectation.expect === 'ready') expect(outcome.status).toBe('ready');
    if (expectation.expect === 'failed') {
      expect(outcome.status).toBe('failed');
      expect(expectation.codes).toContain(outcome.error?.code);
    }
    if (expectation.expect === 'either') {
      expect(['ready', 'failed']).toContain(outcome.status);
      if (outcome.status === 'failed') expect(expectation.codes).toContain(outcome.error?.code);
    }
    for (const bytes of variantBytes.get(name) ?? []) {
      const meta = await sharp(bytes).metadata();
      expect(meta.exif, name).toBeUndefined();
      expect(meta.xmp, name).toBeUndefined();
      expect(meta.iptc, name).toBeUndefined();
      expect(meta.space, name).toBe('srgb');
    }
    // Decided on the first attempt: a hostile file fails at once, never retried (nor does a good one).
    expect(records.get(name), name).toMatchObject({ status: outcome.status, attempts: 1 });
  });
});
