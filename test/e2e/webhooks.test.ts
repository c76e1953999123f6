import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { BatchCompletedEventSchema } from '../../contract/index.ts';
import { webhookSecretPath } from '../../local/glue/webhook-secret.ts';
import { apiClient, type LocalFile, loadFile, putUpload, type UploadItem } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import { removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a batch with a callback and uploads its files. */
async function uploadBatch(stack: StackProcess, owner: string, files: LocalFile[], callbackUrl: string) {
  const api = apiClient(stack.url, owner);
  const created = await api.request('POST', '/v1/uploads', {
    body: { files: files.map(({ name, type, size }) => ({ name, type, size })), callbackUrl },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const items = created.body.items as UploadItem[];
  const puts = await Promise.all(items.map((item, i) => putUpload(item, (files[i] as LocalFile).bytes)));
  expect(puts.every((put) => put.status === 200)).toBe(true);
  return { api, batchId: created.body.batchId as string };
}

/** Distinct photos (a trailing byte each; JPEG ignores it). */
async function photos(count: number): Promise<LocalFile[]> {
  const base = await loadFile(corpusFile('valid/sharp--Landscape_7.jpg'));
  return Array.from({ length: count }, (_, i) => {
    const bytes = Buffer.concat([base.bytes, Buffer.from([i])]);
    return { ...base, name: `photo-${i}.jpg`, bytes, size: bytes.length };
  });
}

/**
 * Webhooks from `npm start` as a process, to a receiver on loopback that verifies each request with
 * the `standardwebhooks` library: the retry schedule, and a SIGKILL anywhere between the final write
 * and the delivery.
 */
describe('webhooks from the local stack process', () => {
  let stacks: StackProcess[] = [];
  let receivers: WebhookReceiver[] = [];
  afterEach(async () => {
    for (const stack of stacks) await stack.stop('SIGKILL');
    if (stacks[0]) await removeDir(stacks[0].dataDir);
    for (const receiver of receivers) await receiver.close();
    stacks = [];
    receivers = [];
  });

  it('retries 500, 500 with the same webhook-id on the default schedule until a 200', async () => {
    const stack = await startStackProcess();
    stacks.push(stack);
    // The secret printed at start is the one kept in DATA_DIR.
    expect(stack.webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect((await readFile(webhookSecretPath(stack.dataDir), 'utf8')).trim()).toBe(stack.webhookSecret);
    const answers = [500, 500, 200];
    const hook = await startWebhookReceiver(stack.webhookSecret, (n) => answers[n] ?? 200);
    receivers.push(hook);
    const batch = await uploadBatch(stack, 'hooks-retry', await photos(1), hook.url);
    await batch.api.waitForBatch(batch.batchId, 60_000);
    const completedAt = Date.now();
    const [first, second, third] = await hook.waitFor(3, 60_000);
    if (!first || !second || !third) throw new Error('three deliveries expected');
    // First delivery within a few seconds of completion; the first two retries within a minute.
    expect(first.at - completedAt).toBeLessThan(5_000);
    expect(second.at - first.at).toBeGreaterThanOrEqual(4_000);
    expect(third.at - second.at).toBeGreaterThanOrEqual(14_000);
    expect(third.at - first.at).toBeLessThan(60_000);
    // One id, one body, each attempt signed afresh and verified.
    expect(new Set(hook.deliveries.map((d) => d.id))).toEqual(new Set([`batch_${batch.batchId}_completed`]));
    expect(new Set(hook.deliveries.map((d) => d.body)).size).toBe(1);
    expect(hook.deliveries.every((d) => d.verified)).toBe(true);
    expect(BatchCompletedEventSchema.parse(JSON.parse(first.body))).toMatchObject({
      type: 'batch.completed',
      data: { batchId: batch.batchId, total: 1, complete: true, counts: { ready: 1 } },
    });
    // Delivered: no fourth attempt.
    await sleep(6_000);
    expect(hook.deliveries).toHaveLength(3);
  });

  it('delivers once recorded, whatever a SIGKILL interrupts (after the final write, or mid-delivery)', async () => {
    const env = { WEBHOOK_RETRY_DELAYS_SECONDS: '1,1,1,1', WEBHOOK_TIMEOUT_MS: '2000' };
    const first = await startStackProcess({ env });
    stacks.push(first);
    // Killed the moment the batch reads complete: the event is recorded, maybe not yet queued or sent.
    const early = await startWebhookReceiver(first.webhookSecret);
    receivers.push(early);
    const a = await uploadBatch(first, 'hooks-kill', await photos(3), early.url);
    await a.api.waitForBatch(a.batchId, 60_000);
    await first.stop('SIGKILL');
    const second = await startStackProcess({ dataDir: first.dataDir, env });
    stacks.push(second);
    expect(second.webhookSecret).toBe(first.webhookSecret);
    await early.waitFor(1, 20_000);

    // Killed while the receiver holds the first attempt open: the message comes back after restart.
    const answers: ('hang' | number)[] = ['hang'];
    const late = await startWebhookReceiver(second.webhookSecret, (n) => answers[n] ?? 200);
    receivers.push(late);
    const b = await uploadBatch(second, 'hooks-kill', (await photos(4)).slice(3), late.url);
    await late.waitFor(1, 60_000);
    await second.stop('SIGKILL');
    const third = await startStackProcess({ dataDir: first.dataDir, env });
    stacks.push(third);
    await late.waitFor(2, 60_000);
    await sleep(3_000);

    for (const [hook, batchId] of [
      [early, a.batchId],
      [late, b.batchId],
    ] as const) {
      expect(new Set(hook.deliveries.map((d) => d.id))).toEqual(new Set([`batch_${batchId}_completed`]));
      expect(hook.deliveries.every((d) => d.verified)).toBe(true);
    }
    // The one interrupted mid-delivery was sent again, with the same id.
    expect(late.deliveries.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses, as deployed, callback URLs that are http or resolve to private or loopback addresses', async () => {
    const stack = await startStackProcess({ env: { CALLBACK_ALLOW_PRIVATE: 'false' } });
    stacks.push(stack);
    const api = apiClient(stack.url, 'hooks-policy');
    const files = [{ name: 'a.jpg', type: 'image/jpeg', size: 10 }];
    for (const callbackUrl of [
      'http://hooks.example.com/x',
      'https://127.0.0.1/x',
      'https://localhost:8443/x',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/x',
      'https://[::ffff:10.0.0.1]/x',
      'https://10.1.2.3/x',
      'https://192.168.0.1/x',
    ]) {
      const response = await api.request('POST', '/v1/uploads', { body: { files, callbackUrl } });
      expect(response.status, callbackUrl).toBe(400);
      expect(response.body.error).toMatchObject({
        code: 'InvalidRequest',
        details: [{ path: 'callbackUrl' }],
      });
    }
    const ok = await api.request('POST', '/v1/uploads', {
      body: { files, callbackUrl: 'https://93.184.215.14/hooks' },
    });
    expect(ok.status).toBe(201);
  });
});
