import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import { fileSource } from '../../client/node.ts';
import { type ClientStack, makePhotos, startClientStack } from './support.ts';

/**
 * Upload URLs that live 5 seconds (its own file: the handlers read their settings once per
 * process). Slow uploads outlive them: the client renews a URL before using a stale one, and again
 * when the storage endpoint says one expired on the way.
 */
describe('client library with 5-second upload URLs', () => {
  let env: ClientStack;
  let photos: string[];

  beforeAll(async () => {
    env = await startClientStack({ UPLOAD_URL_TTL_SECONDS: '5' });
    photos = await makePhotos(50, 'short');
  }, 120_000);

  afterAll(async () => {
    await env?.stop();
  });

  it('ends with every file ready', async () => {
    const refused: number[] = [];
    let puts = 0;
    // Each PUT takes 300 ms before it leaves, and every seventh one 6 s: longer than its URL lives.
    const slowFetch: typeof fetch = async (input, init) => {
      if (init?.method === 'PUT') {
        puts++;
        await new Promise((resolve) => setTimeout(resolve, puts % 7 === 0 ? 6_000 : 300));
        const response = await fetch(input, init);
        if (response.status === 403) refused.push(response.status);
        return response;
      }
      return fetch(input, init);
    };
    const refreshes: string[] = [];
    const countingFetch: typeof fetch = (input, init) => {
      if (init?.method === 'POST' && String(input).endsWith('/upload')) refreshes.push(String(input));
      return slowFetch(input, init);
    };
    const client = createClient({
      api: env.stack.apiUrl,
      token: `short-${randomUUID()}`,
      fetch: countingFetch,
    });
    const limits = await client.limits();
    expect(limits.uploadUrlTtlSeconds).toBe(5);

    const result = await client.uploadFiles(await Promise.all(photos.map(fileSource)), { concurrency: 2 });
    expect(result.files.map((file) => file.status)).toEqual(photos.map(() => 'uploaded'));
    // Both ways of renewing happened: before a PUT (stale URL) and after one was refused as expired.
    expect(refused.length).toBeGreaterThan(0);
    expect(refreshes.length).toBeGreaterThan(refused.length);

    const batch = await client.waitForBatch(result.batchIds[0] as string, { timeoutMs: 150_000 });
    expect(batch.counts.ready).toBe(50);
  }, 240_000);
});
