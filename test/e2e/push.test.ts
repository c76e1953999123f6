import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchCompletedEventSchema } from '../../contract/index.ts';
import { encodeEventKey } from '../../functions/shared/notify/s3-events.ts';
import { eventLogPath } from '../../local/glue/events.ts';
import { webhookSecretPath } from '../../local/glue/webhook-secret.ts';
import { readLocalSettings } from '../../local/settings.ts';
import { type LocalStack, startLocalStack } from '../../local/stack.ts';
import { apiClient, type LocalFile, loadFile, putUpload, type UploadItem } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import { type FaultProxy, s3Get, s3InternalError, startFaultProxy } from '../support/fault-proxy.ts';
import { LOCAL_CREDENTIALS } from '../support/local-clients.ts';
import { removeDir } from '../support/stack-process.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

const UPLOADS = 'photo-intake-uploads';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The stack's WEBHOOK_SECRET setting (32 bytes in base64, as the stack makes its own). */
const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

/**
 * Webhooks and metrics with the stack in this process: duplicate S3 events and a retried optimizer
 * still make one `batch.completed`; a receiver that never answers holds up nothing; `/metrics` moves
 * by exactly what a batch of corpus files came to.
 */
describe('webhooks and metrics on the local stack', () => {
  let stack: LocalStack;
  let dataDir: string;
  let s3: FaultProxy;
  let sqs: SQSClient;
  const receivers: WebhookReceiver[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'photo-intake-push-'));
    const settings = readLocalSettings({
      PORT: '0',
      DATA_DIR: dataDir,
      QUEUE_VISIBILITY_TIMEOUT_SECONDS: '1',
      OPTIMIZER_CONCURRENCY: '2',
      LOG_LEVEL: 'SILENT',
      WEBHOOK_TIMEOUT_MS: '2000',
      WEBHOOK_RETRY_DELAYS_SECONDS: '1,1,1',
      WEBHOOK_SECRET,
    });
    stack = await startLocalStack(settings, (line) => logs.push(line), {
      wrapEndpoint: async (service, endpoint) => {
        if (service !== 's3') return endpoint;
        s3 = await startFaultProxy(endpoint);
        return s3.endpoint;
      },
    });
    sqs = new SQSClient({ region: 'us-east-1', endpoint: stack.sqsEndpoint, credentials: LOCAL_CREDENTIALS });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    await s3?.stop();
    for (const receiver of receivers) await receiver.close();
    sqs?.destroy();
    await removeDir(dataDir);
  });

  async function receiver(answer?: Parameters<typeof startWebhookReceiver>[1]) {
    // Every receiver verifies with the configured secret: it is the one webhooks are signed with.
    const started = await startWebhookReceiver(WEBHOOK_SECRET, answer);
    receivers.push(started);
    return started;
  }

  /** Creates a batch (with a callback when given), uploads every file; returns the batch. */
  async function uploadBatch(owner: string, files: LocalFile[], callbackUrl?: string) {
    const api = apiClient(stack.apiUrl, owner);
    const created = await api.request('POST', '/v1/uploads', {
      body: {
        files: files.map(({ name, type, size }) => ({ name, type, size })),
        ...(callbackUrl ? { callbackUrl } : {}),
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const items = created.body.items as (UploadItem & { imageId: string })[];
    const puts = await Promise.all(items.map((item, i) => putUpload(item, (files[i] as LocalFile).bytes)));
    expect(puts.every((put) => put.status === 200)).toBe(true);
    return { api, batchId: created.body.batchId as string, items };
  }

  async function eventsOfBatch(batchId: string) {
    return (await readFile(eventLogPath(dataDir), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { type: string; batchId: string })
      .filter((event) => event.batchId === batchId);
  }

  const photos = (...names: string[]) => Promise.all(names.map((name) => loadFile(corpusFile(name))));

  it('sends one signed batch.completed despite S3 events delivered three times and a retried optimizer', async () => {
    const hook = await receiver();
    const files = await photos('valid/sharp--Landscape_1.jpg', 'valid/sharp--Landscape_5.jpg');
    const batch = await uploadBatch('push-dup', files, hook.url);
    const [first, second] = batch.items;
    if (!first || !second) throw new Error('two items expected');
    // The first image's optimizer fails once (3 SDK tries of the GET), so its message is retried...
    const rule = s3.inject({
      match: s3Get(UPLOADS, `uploads/${batch.batchId}/${first.imageId}`),
      times: 3,
      ...s3InternalError,
    });
    // ...and both images' notifications arrive twice more.
    await Promise.all(
      [first, second, first, second].map((item) =>
        sqs.send(
          new SendMessageCommand({
            QueueUrl: stack.queueUrl,
            MessageBody: JSON.stringify({
              Records: [
                {
                  eventVersion: '2.1',
                  eventSource: 'aws:s3',
                  eventName: 'ObjectCreated:Put',
                  s3: {
                    bucket: { name: UPLOADS },
                    object: { key: encodeEventKey(`uploads/${batch.batchId}/${item.imageId}`), size: 1 },
                  },
                },
              ],
            }),
          }),
        ),
      ),
    );
    const done = await batch.api.waitForBatch(batch.batchId, 60_000);
    expect(done.counts).toMatchObject({ ready: 2, failed: 0 });
    expect(rule.hits).toBe(3);
    await hook.waitFor(1, 10_000);
    // Anything late would arrive by now (the relay runs as each move commits, the notifier polls at once).
    await sleep(3_000);
    expect(new Set(hook.deliveries.map((d) => d.id))).toEqual(new Set([`batch_${batch.batchId}_completed`]));
    expect(hook.deliveries.every((d) => d.verified)).toBe(true);
    const body = BatchCompletedEventSchema.parse(JSON.parse(hook.deliveries[0]?.body ?? ''));
    expect(body).toMatchObject({
      type: 'batch.completed',
      data: { batchId: batch.batchId, total: 2, complete: true, counts: { ready: 2, failed: 0, pending: 0 } },
    });
    // Exactly one batch.completed was recorded, so any repeat could only be a redelivery of it.
    const completed = (await eventsOfBatch(batch.batchId)).filter((e) => e.type === 'batch.completed');
    expect(completed).toHaveLength(1);
  });

  it('signs with WEBHOOK_SECRET when it is set, and makes no secret of its own', async () => {
    expect(stack.webhookSecret).toBe(WEBHOOK_SECRET);
    await expect(readFile(webhookSecretPath(dataDir), 'utf8')).rejects.toThrow(/ENOENT/);
    // The deliveries each test's receiver verifies with WEBHOOK_SECRET are the proof it is applied.
  });

  it('is not slowed down by a receiver that never answers', async () => {
    const silent = await receiver(() => 'hang');
    const [photo, other] = await photos('valid/sharp--Landscape_2.jpg', 'valid/sharp--Landscape_3.jpg');
    // Three batches whose webhooks hang until the notifier's timeout (2 s), then are retried.
    const hanging = await Promise.all(
      [0, 1, 2].map(async (n) => {
        const bytes = Buffer.concat([(photo as LocalFile).bytes, Buffer.from([n])]);
        return uploadBatch(
          `push-silent-${n}`,
          [{ ...(photo as LocalFile), bytes, size: bytes.length }],
          silent.url,
        );
      }),
    );
    for (const batch of hanging) await batch.api.waitForBatch(batch.batchId, 60_000);
    await silent.waitFor(3, 10_000);
    // While those deliveries hang, another batch goes through the pipeline.
    const started = Date.now();
    const next = await uploadBatch('push-after-silent', [other as LocalFile]);
    const done = await next.api.waitForBatch(next.batchId, 30_000);
    const took = Date.now() - started;
    expect(done.counts.ready).toBe(1);
    expect(took).toBeLessThan(15_000);
    // The silent receiver is tried again (same ids), and never gets anything but those three ids.
    await silent.waitFor(6, 20_000);
    expect(new Set(silent.deliveries.map((d) => d.id)).size).toBe(3);
    expect(silent.deliveries.every((d) => d.verified)).toBe(true);
  });

  it('moves /metrics by exactly what a batch of corpus files came to', async () => {
    const names = [
      'valid/sharp--Landscape_6.jpg',
      'valid/sharp--4.webp',
      'valid/sharp--16-bit-grey-alpha.png',
      'hostile/sharp--truncated.jpg',
      'hostile/fuzzdb--eicar.com.txt',
      'hostile/sharp--corrupt-header.jpg',
    ];
    const files = await photos(...names);
    const before = await scrape(stack.apiUrl);
    const batch = await uploadBatch('push-metrics', files);
    const done = await batch.api.waitForBatch(batch.batchId, 90_000);
    // The relay hands events on just after each move commits: wait until the completion and every
    // image are counted.
    const finished = (text: string) =>
      labelSets(text).reduce(
        (sum, labels) => sum + value(text, `photo_intake_images_finished_total{${labels}}`),
        0,
      );
    let after = await scrape(stack.apiUrl);
    for (
      let i = 0;
      i < 40 &&
      (value(after, 'photo_intake_batches_completed_total') ===
        value(before, 'photo_intake_batches_completed_total') ||
        finished(after) - finished(before) < files.length);
      i++
    ) {
      await sleep(250);
      after = await scrape(stack.apiUrl);
    }
    const moved = (name: string) => value(after, name) - value(before, name);
    const outcomes = new Map<string, number>();
    for (const item of done.items as { status: string; error?: { code: string } }[]) {
      const key =
        item.status === 'ready'
          ? 'outcome="ready",code="none"'
          : `outcome="failed",code="${item.error?.code}"`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    expect(done.counts.ready + done.counts.failed).toBe(files.length);
    expect(done.counts.failed).toBeGreaterThan(0);
    expect(moved('photo_intake_files_requested_total')).toBe(files.length);
    expect(moved('photo_intake_batches_completed_total')).toBe(1);
    const finishedLabels = new Set([...labelSets(before), ...labelSets(after)]);
    for (const labels of finishedLabels) {
      expect(moved(`photo_intake_images_finished_total{${labels}}`), labels).toBe(outcomes.get(labels) ?? 0);
    }
    for (const labels of outcomes.keys()) expect(finishedLabels).toContain(labels);
    // Every finished image had started processing after it landed: one observation each.
    expect(moved('photo_intake_processing_seconds_count')).toBe(files.length);
    expect(moved('photo_intake_queue_lag_seconds_count')).toBe(files.length);
    expect(after).toMatch(/# TYPE photo_intake_processing_seconds histogram/);
    expect(after).toMatch(/# TYPE photo_intake_queue_lag_seconds histogram/);
  });

  it('answers /metrics without authentication', async () => {
    const response = await fetch(`${stack.apiUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await response.text()).toMatch(/# HELP photo_intake_files_requested_total/);
  });
});

async function scrape(apiUrl: string): Promise<string> {
  const response = await fetch(`${apiUrl}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

/** A sample's value (0 when absent). `name` may carry its labels exactly as printed. */
function value(text: string, name: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (line.slice(0, at) === name) return Number(line.slice(at + 1));
  }
  return 0;
}

/** The label sets of photo_intake_images_finished_total, as printed. */
function labelSets(text: string): string[] {
  return [...text.matchAll(/^photo_intake_images_finished_total\{(.*)\} /gm)].map((m) => m[1] as string);
}
