import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type UploadProgress, type UploadState } from '../../client/index.ts';
import { fileSource } from '../../client/node.ts';
import type { ProxiedRequest } from '../support/fault-proxy.ts';
import {
  type ClientStack,
  everyNth,
  isUploadPut,
  keyOf,
  makePhotos,
  sleep,
  startClientStack,
} from './support.ts';

/**
 * The client library against the local stack, with the fault proxy between it and the storage
 * endpoint: dropped uploads, an aborted run resumed from its saved state, and progress.
 */
describe('client library on the local stack', () => {
  let env: ClientStack;
  let photos: string[];

  beforeAll(async () => {
    env = await startClientStack();
    photos = await makePhotos(50);
  }, 120_000);

  afterAll(async () => {
    await env?.stop();
  });

  const clientFor = (owner: string) => createClient({ api: env.stack.apiUrl, token: owner });

  it('uploads 50 photos with 30% of PUTs dropped: all end ready, none processed twice, progress only grows', async () => {
    // Every third PUT or so fails, three ways in turn: the connection reset before the bytes are
    // stored, reset after they are stored (the client never hears), or S3's 503 SlowDown. No
    // file is failed more than three times (the client retries up to eight).
    const pick = everyNth(0.3, 3);
    const decisions = new WeakMap<ProxiedRequest, 'request' | 'response' | 'slowdown' | undefined>();
    let picked = 0;
    const kinds = ['request', 'response', 'slowdown'] as const;
    /** Where in `env.puts` each PUT whose answer was dropped is (its bytes were stored). */
    const storedUnheard = new Map<string, number>();
    const decide = (req: ProxiedRequest) => {
      if (!decisions.has(req)) {
        const kind = isUploadPut(req) && pick(keyOf(req)) ? kinds[picked++ % 3] : undefined;
        if (kind === 'response') storedUnheard.set(keyOf(req), env.puts.length - 1);
        decisions.set(req, kind);
      }
      return decisions.get(req);
    };
    const rules = [
      env.s3.inject({ match: (req) => decide(req) === 'request', times: Infinity, drop: 'request' }),
      env.s3.inject({ match: (req) => decide(req) === 'response', times: Infinity, drop: 'response' }),
      env.s3.inject({
        match: (req) => decide(req) === 'slowdown',
        times: Infinity,
        status: 503,
        contentType: 'application/xml',
        body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
      }),
    ];
    const before = env.puts.length;
    const progress: UploadProgress[] = [];
    const client = clientFor(`drops-${randomUUID()}`);
    try {
      const sources = await Promise.all(photos.map(fileSource));
      const result = await client.uploadFiles(sources, {
        concurrency: 4,
        onProgress: (event) => progress.push({ ...event }),
      });
      expect(result.files.map((file) => file.status)).toEqual(photos.map(() => 'uploaded'));

      const puts = env.puts.slice(before);
      const dropped = rules.reduce((sum, rule) => sum + rule.hits, 0);
      // Bytes stored whose answer was lost are not sent again: the client asks for a fresh URL
      // before retrying after no answer, and the API says they landed (409).
      expect(puts.length).toBe(50 + dropped - (rules[1]?.hits ?? 0));
      for (const [key, at] of storedUnheard) expect(env.puts.lastIndexOf(key)).toBe(at);
      expect(dropped / puts.length).toBeGreaterThanOrEqual(0.25);
      expect(rules.every((rule) => rule.hits > 0)).toBe(true);

      const [batchId] = result.batchIds;
      const batch = await client.waitForBatch(batchId as string, { timeoutMs: 150_000 });
      expect(batch.counts.ready).toBe(50);
      // Each image was processed once.
      const attempts = await Promise.all(
        result.files.map((file) => env.attempts(file.batchId as string, file.imageId as string)),
      );
      expect(attempts).toEqual(photos.map(() => 1));

      const total = (await Promise.all(photos.map((file) => stat(file)))).reduce((sum, s) => sum + s.size, 0);
      for (let i = 1; i < progress.length; i++) {
        const [previous, current] = [progress[i - 1] as UploadProgress, progress[i] as UploadProgress];
        expect(current.bytesDone).toBeGreaterThanOrEqual(previous.bytesDone);
        expect(current.filesDone).toBeGreaterThanOrEqual(previous.filesDone);
      }
      expect(progress.at(-1)).toEqual({ bytesDone: total, bytesTotal: total, filesDone: 50, filesTotal: 50 });
    } finally {
      for (const rule of rules) rule.times = 0;
    }
  }, 240_000);

  it('resumes an aborted run from its saved state, PUTting only the files not stored', async () => {
    // Slow PUTs, so that the run is stopped with some stored, some in flight and some not started.
    const slow = env.s3.inject({ match: isUploadPut, times: Infinity, delayMs: 150 });
    const client = clientFor(`resume-${randomUUID()}`);
    const sources = await Promise.all(photos.map(fileSource));
    let saved = '';
    const controller = new AbortController();
    let uploaded = 0;
    const firstRun = client.uploadFiles(sources, {
      concurrency: 4,
      signal: controller.signal,
      onStateChange: (state) => {
        saved = JSON.stringify(state);
      },
      onFile: (file) => {
        if (file.status === 'uploaded' && ++uploaded === 20) controller.abort(new Error('stop half-way'));
      },
    });
    await expect(firstRun).rejects.toThrow('stop half-way');
    slow.times = 0;

    const state = JSON.parse(saved) as UploadState;
    const entries = Object.values(state.files);
    expect(entries).toHaveLength(50);
    const batchId = entries[0]?.batchId as string;
    const keys = entries.map((entry) => `uploads/${entry.batchId}/${entry.imageId}`);
    await sleep(500);
    const stored = new Set(
      (await Promise.all(keys.map(async (key) => ((await env.stored(key)) ? key : '')))).filter(Boolean),
    );
    const missing = keys.filter((key) => !stored.has(key));
    expect(stored.size).toBeGreaterThanOrEqual(20);
    expect(missing.length).toBeGreaterThan(0);
    // Let the service record every stored object as landed (the queue's consumer does that).
    for (let i = 0; i < 100; i++) {
      const page = await client.getBatch(batchId);
      if (!page.notModified && page.view.counts.pending === missing.length) break;
      await sleep(200);
    }

    const before = env.puts.length;
    const result = await client.uploadFiles(sources, { concurrency: 4, resume: state });
    expect(result.files.map((file) => file.status)).toEqual(photos.map(() => 'uploaded'));
    expect(result.batchIds).toEqual([batchId]);
    expect(new Set(env.puts.slice(before))).toEqual(new Set(missing));

    const batch = await client.waitForBatch(batchId, { timeoutMs: 150_000 });
    expect(batch.counts.ready).toBe(50);
  }, 240_000);
});
