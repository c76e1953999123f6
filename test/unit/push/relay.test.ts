import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { relayStreamRecords } from '../../../functions/relay/relay-stream.ts';
import type { PipelineEvent } from '../../../functions/shared/fate/events.ts';
import { observeEvents, ownerHash } from '../../../functions/shared/fate/observe.ts';
import type { FinishedImage, PipelineMetrics } from '../../../functions/shared/observability.ts';
import { outboxKey } from '../../../functions/shared/records/schema.ts';

const ready: PipelineEvent = {
  id: 'img_A_ready',
  type: 'image.ready',
  time: '2026-12-01T10:00:03.000Z',
  owner: 'alice@example.com',
  batchId: 'B',
  imageId: 'A',
  name: 'a.jpg',
  landedAt: '2026-12-01T10:00:00.000Z',
  startedAt: '2026-12-01T10:00:01.500Z',
};

const streamRecord = (eventName: 'INSERT' | 'REMOVE', row: Record<string, unknown>): DynamoDBRecord =>
  ({ eventName, dynamodb: { NewImage: marshall(row, { removeUndefinedValues: true }) } }) as DynamoDBRecord;

describe('the outbox relay (DynamoDB Streams)', () => {
  it('hands on inserted outbox rows only, then deletes them', async () => {
    const published: PipelineEvent[] = [];
    const deleted: unknown[] = [];
    const count = await relayStreamRecords(
      {
        sink: { publish: async (events) => void published.push(...events) },
        deleteRows: async (keys) => void deleted.push(...keys),
      },
      [
        streamRecord('INSERT', { ...outboxKey(ready.id), event: ready }),
        streamRecord('INSERT', { pk: 'B#B', sk: '#BATCH', event: ready }),
        streamRecord('REMOVE', { ...outboxKey('other'), event: ready }),
      ],
    );
    expect(count).toBe(1);
    expect(published).toEqual([ready]);
    expect(deleted).toEqual([outboxKey(ready.id)]);
  });

  it('deletes nothing when a sink fails (the batch is retried)', async () => {
    const deleted: unknown[] = [];
    await expect(
      relayStreamRecords(
        {
          sink: {
            publish: async () => {
              throw new Error('EventBridge down');
            },
          },
          deleteRows: async (keys) => void deleted.push(...keys),
        },
        [streamRecord('INSERT', { ...outboxKey(ready.id), event: ready })],
      ),
    ).rejects.toThrow('EventBridge down');
    expect(deleted).toEqual([]);
  });
});

describe('figures and the finished-image log line from events', () => {
  it('records outcome, code, processing time and queue lag; logs no owner id in clear', async () => {
    const finished: FinishedImage[] = [];
    let batches = 0;
    const lines: unknown[] = [];
    const metrics = {
      imageFinished: (f: FinishedImage) => finished.push(f),
      batchCompleted: () => batches++,
    } as unknown as PipelineMetrics;
    await observeEvents(metrics, { info: (...args: unknown[]) => lines.push(args) }).publish([
      ready,
      {
        ...ready,
        id: 'img_C_failed',
        type: 'image.failed',
        imageId: 'C',
        error: { code: 'CorruptImage', message: 'x' },
      },
      {
        id: 'batch_B_completed',
        type: 'batch.completed',
        time: ready.time,
        owner: ready.owner,
        batchId: 'B',
        total: 2,
        counts: { pending: 0, uploaded: 0, processing: 0, ready: 1, failed: 1, rejected: 0, expired: 0 },
      },
    ]);
    expect(finished).toEqual([
      { outcome: 'ready', code: 'none', processingSeconds: 1.5, queueLagSeconds: 1.5 },
      { outcome: 'failed', code: 'CorruptImage', processingSeconds: 1.5, queueLagSeconds: 1.5 },
    ]);
    expect(batches).toBe(1);
    expect(lines[0]).toEqual([
      'image finished',
      { imageId: 'A', batchId: 'B', owner: ownerHash(ready.owner), outcome: 'ready', code: 'none', ms: 1500 },
    ]);
    expect(JSON.stringify(lines)).not.toContain('alice');
  });
});
