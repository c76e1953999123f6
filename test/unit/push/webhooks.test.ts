import type { SQSRecord } from 'aws-lambda';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { BatchCompletedEventSchema } from '../../../contract/index.ts';
import { processDeliveries } from '../../../functions/notifier/process-deliveries.ts';
import type { BatchCompletedEvent } from '../../../functions/shared/fate/events.ts';
import type { PipelineMetrics, WebhookResult } from '../../../functions/shared/observability.ts';
import { WebhookSigner, webhookJob, webhookSecret } from '../../../functions/shared/push/webhooks.ts';

const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const event: BatchCompletedEvent = {
  id: 'batch_01JABCDEFGHJKMNPQRSTVWXYZ_completed',
  type: 'batch.completed',
  time: '2026-12-01T10:00:00.000Z',
  owner: 'alice',
  batchId: '01JABCDEFGHJKMNPQRSTVWXYZ0',
  total: 2,
  counts: { pending: 0, uploaded: 0, processing: 0, ready: 1, failed: 1, rejected: 0, expired: 0 },
  callbackUrl: 'https://hooks.example.com/in',
};

describe('webhook signing', () => {
  it('makes the contract body, and headers the standardwebhooks verifier accepts', () => {
    const job = webhookJob(event);
    if (!job) throw new Error('a job expected');
    expect(BatchCompletedEventSchema.parse(JSON.parse(job.body))).toEqual({
      type: 'batch.completed',
      timestamp: event.time,
      data: { batchId: '01JABCDEFGHJKMNPQRSTVWXYZ0', total: 2, counts: event.counts, complete: true },
    });
    expect(job.body).not.toContain('alice');
    const now = new Date();
    const headers = new WebhookSigner(SECRET).headers(job, now);
    expect(headers['webhook-id']).toBe(event.id);
    expect(headers['webhook-timestamp']).toBe(String(Math.floor(now.getTime() / 1000)));
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(SECRET).verify(job.body, headers)).toEqual(JSON.parse(job.body));
    // A changed body, another secret, or another id fails verification.
    expect(() => new Webhook(SECRET).verify(job.body.replace('"total":2', '"total":3'), headers)).toThrow();
    expect(() =>
      new Webhook(`whsec_${Buffer.alloc(32, 8).toString('base64')}`).verify(job.body, headers),
    ).toThrow();
    expect(() => new Webhook(SECRET).verify(job.body, { ...headers, 'webhook-id': 'other' })).toThrow();
  });

  it('owes no webhook for a batch created without a callbackUrl', () => {
    const { callbackUrl: _, ...without } = event;
    expect(webhookJob(without)).toBeUndefined();
  });

  it("takes Secrets Manager's bare base64 as the whsec_ secret", () => {
    const bare = Buffer.alloc(24, 1).toString('base64');
    expect(webhookSecret(bare)).toBe(`whsec_${bare}`);
    expect(webhookSecret(SECRET)).toBe(SECRET);
  });
});

describe('the notifier', () => {
  const job = webhookJob(event);
  const record = (receives: number, body = JSON.stringify(job)): SQSRecord =>
    ({
      messageId: `m${receives}`,
      receiptHandle: `r${receives}`,
      body,
      attributes: { ApproximateReceiveCount: String(receives) },
    }) as unknown as SQSRecord;

  function deps(answer: { ok: boolean; status?: number }) {
    const hidden: [string, number][] = [];
    const results: WebhookResult[] = [];
    const sent: Record<string, string>[] = [];
    const metrics = { webhookAttempt: (r: WebhookResult) => results.push(r) } as unknown as PipelineMetrics;
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    return {
      hidden,
      results,
      sent,
      deps: {
        signer: new WebhookSigner(SECRET),
        post: async (_job: unknown, headers: Record<string, string>) => {
          sent.push(headers);
          return answer;
        },
        retryAfter: async (handle: string, seconds: number) => {
          hidden.push([handle, seconds]);
        },
        retryDelaysSeconds: [5, 300, 1800],
        metrics,
        logger: quiet,
      },
    };
  }

  it('deletes a delivered message', async () => {
    const t = deps({ ok: true, status: 204 });
    expect(await processDeliveries(t.deps, { Records: [record(1)] })).toEqual({ batchItemFailures: [] });
    expect(t.hidden).toEqual([]);
    expect(t.results).toEqual(['delivered']);
    expect(t.sent[0]?.['webhook-id']).toBe(event.id);
  });

  it('hides a failed message for the next delay of the schedule, by attempt', async () => {
    const t = deps({ ok: false, status: 500 });
    const response = await processDeliveries(t.deps, { Records: [record(1), record(2), record(3)] });
    expect(response.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(['m1', 'm2', 'm3']);
    expect(t.hidden).toEqual([
      ['r1', 5],
      ['r2', 300],
      ['r3', 1800],
    ]);
    expect(t.results).toEqual(['retrying', 'retrying', 'retrying']);
  });

  it('lets the message go to the DLQ after the last attempt', async () => {
    const t = deps({ ok: false });
    const response = await processDeliveries(t.deps, { Records: [record(4)] });
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm4' }]);
    expect(t.hidden).toEqual([['r4', 0]]);
    expect(t.results).toEqual(['gave_up']);
  });

  it('drops a message that is no webhook job instead of retrying it', async () => {
    const t = deps({ ok: true });
    expect(await processDeliveries(t.deps, { Records: [record(1, '{"nope":1}')] })).toEqual({
      batchItemFailures: [],
    });
    expect(t.sent).toEqual([]);
  });
});
