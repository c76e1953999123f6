import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type LocalFile, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile, expectations } from '../support/corpus.ts';
import { removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

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
    for (const variant of outcome.status === 'ready' ? (outcome.variants ?? []) : []) {
      const bytes = Buffer.from(await (await fetch(variant.url)).arrayBuffer());
      const meta = await sharp(bytes).metadata();
      expect(meta.exif, name).toBeUndefined();
      expect(meta.xmp, name).toBeUndefined();
      expect(meta.iptc, name).toBeUndefined();
      expect(meta.space, name).toBe('srgb');
    }
  });
});
