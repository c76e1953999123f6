import { beforeEach, describe, expect, it } from 'vitest';
import { type ReconcileDeps, reconcile } from '../../../functions/reconciler/reconcile.ts';
import { newId } from '../../../functions/shared/ids.ts';
import type { ImageItem } from '../../../functions/shared/records/types.ts';
import {
  MemoryImageRecords,
  MemoryObjectStore,
  MemoryStatusMoves,
  MemoryWorkQueue,
  pendingImage,
  quietLogger,
} from '../../support/fakes.ts';

const UPLOADS = 'uploads-bucket';
/** The reconciler's clock, injected: nothing here depends on when the test runs. */
const NOW = new Date('2026-03-10T12:00:00.000Z');
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();
const MINUTE = 60_000;
const OPTIONS = {
  stuckAfterMs: 15 * MINUTE,
  missedEventAfterMs: 10 * MINUTE,
  maxAttempts: 3,
  maxDeadLetters: 10,
};
const NOTHING = {
  failedFromDeadLetters: 0,
  failedAfterAttempts: 0,
  requeuedStuck: 0,
  queuedMissedEvents: 0,
  closedExpired: 0,
  repairedOpenCounts: 0,
};

/** What tells each decider's ProcessingFailed apart: the path that decided is named in the message. */
const DEAD_LETTER = 'found in the dead-letter queue by the reconciler';
const GIVEN_UP = 'given up by the reconciler';
const OPTIMIZER = "the optimizer's last attempt";

describe('reconcile, path by path', () => {
  let moves: MemoryStatusMoves;
  let objects: MemoryObjectStore;
  let queue: MemoryWorkQueue;
  let deps: ReconcileDeps;

  beforeEach(() => {
    moves = new MemoryStatusMoves(() => NOW);
    objects = new MemoryObjectStore();
    queue = new MemoryWorkQueue();
    deps = {
      records: new MemoryImageRecords(moves),
      moves,
      objects,
      queue,
      quotas: { repairOpenUploads: async () => 0 },
      uploadBucket: UPLOADS,
      uploadPrefix: 'uploads/',
      logger: quietLogger,
      now: () => NOW,
    };
  });

  const image = (fields: Partial<ImageItem>) => moves.add(pendingImage(newId(), newId(), fields));
  const run = () => reconcile(deps, OPTIONS);

  it('fails what the DLQ holds as ProcessingFailed, saying the reconciler found it there', async () => {
    const item = image({ status: 'processing', updatedAt: ago(MINUTE), attempts: 1 });
    queue.letters = [
      { bucket: UPLOADS, key: item.key },
      // A letter naming no upload of ours is left alone.
      { bucket: UPLOADS, key: 'uploads/something-else.jpg' },
    ];
    expect(await run()).toEqual({ ...NOTHING, failedFromDeadLetters: 1 });
    const failed = moves.get(item.imageId);
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'ProcessingFailed' } });
    expect(failed?.error?.message).toContain(DEAD_LETTER);
    expect(failed?.error?.message).not.toContain(GIVEN_UP);
    expect(failed?.error?.message).not.toContain(OPTIMIZER);
    // Run again (the letter is still in the DLQ): nothing more happens.
    expect(await run()).toEqual(NOTHING);
  });

  it('leaves an image the optimizer already failed on its last receive as the optimizer decided', async () => {
    const item = image({
      status: 'failed',
      error: { code: 'ProcessingFailed', message: `Processing failed 5 times (${OPTIMIZER}).` },
    });
    queue.letters = [{ bucket: UPLOADS, key: item.key }];
    expect(await run()).toEqual(NOTHING);
    expect(moves.get(item.imageId)?.error?.message).toContain(OPTIMIZER);
  });

  it('gives up on stuck work that used up its attempts, saying so', async () => {
    const item = image({ status: 'processing', updatedAt: ago(16 * MINUTE), attempts: 3 });
    expect(await run()).toEqual({ ...NOTHING, failedAfterAttempts: 1 });
    const failed = moves.get(item.imageId);
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'ProcessingFailed' } });
    expect(failed?.error?.message).toContain(GIVEN_UP);
    expect(failed?.error?.message).toContain('3 times');
    expect(failed?.error?.message).not.toContain(DEAD_LETTER);
    expect(queue.queued).toEqual([]);
  });

  it('queues stuck work again while attempts are left, and marks it looked after', async () => {
    const processing = image({ status: 'processing', updatedAt: ago(16 * MINUTE), attempts: 2 });
    const uploaded = image({ status: 'uploaded', updatedAt: ago(16 * MINUTE) });
    expect(await run()).toEqual({ ...NOTHING, requeuedStuck: 2 });
    expect(queue.queued).toEqual(
      expect.arrayContaining([
        { bucket: UPLOADS, key: processing.key },
        { bucket: UPLOADS, key: uploaded.key },
      ]),
    );
    expect(queue.queued).toHaveLength(2);
    // Touched: the next run does not queue it a second time.
    expect(moves.get(processing.imageId)).toMatchObject({
      status: 'processing',
      updatedAt: NOW.toISOString(),
    });
    expect(await run()).toEqual(NOTHING);
  });

  it('leaves work alone until it has been untouched for stuckAfter', async () => {
    image({ status: 'processing', updatedAt: ago(15 * MINUTE - 1), attempts: 3 });
    image({ status: 'uploaded', updatedAt: ago(15 * MINUTE - 1) });
    expect(await run()).toEqual(NOTHING);
    expect(queue.queued).toEqual([]);
  });

  it('queues a stored object whose notification was lost, once it is old enough', async () => {
    const lost = image({ updatedAt: ago(20 * MINUTE) });
    objects.set(UPLOADS, lost.key, Buffer.from('x'), new Date(NOW.getTime() - 10 * MINUTE));
    const young = image({ updatedAt: ago(20 * MINUTE) });
    objects.set(UPLOADS, young.key, Buffer.from('x'), new Date(NOW.getTime() - 10 * MINUTE + 1));

    expect(await run()).toEqual({ ...NOTHING, queuedMissedEvents: 1 });
    expect(queue.queued).toEqual([{ bucket: UPLOADS, key: lost.key }]);
    expect(moves.get(lost.imageId)?.status).toBe('uploaded');
    // The object that landed a moment ago may still have its event on the way.
    expect(moves.get(young.imageId)?.status).toBe('pending');
  });

  it('settles as expired a pending image whose URL ran out with nothing stored, after the grace', async () => {
    const expired = image({ updatedAt: ago(60 * MINUTE), uploadExpiresAt: ago(5 * MINUTE + 1) });
    const inGrace = image({ updatedAt: ago(60 * MINUTE), uploadExpiresAt: ago(5 * MINUTE) });
    const open = image({ updatedAt: ago(60 * MINUTE), uploadExpiresAt: ago(-MINUTE) });
    expect(await run()).toEqual({ ...NOTHING, closedExpired: 1 });
    expect(moves.get(expired.imageId)?.status).toBe('expired');
    expect(moves.get(inGrace.imageId)?.status).toBe('pending');
    expect(moves.get(open.imageId)?.status).toBe('pending');
    expect(queue.queued).toEqual([]);
  });

  it('looks only at images older than the smaller threshold', async () => {
    const stuckSoon = image({ status: 'uploaded', updatedAt: ago(12 * MINUTE) });
    // missedEventAfter (10 min) is the smaller threshold: a pending record untouched for 12 minutes
    // is looked at; an uploaded one is not yet stuck (15 min).
    const lost = image({ updatedAt: ago(12 * MINUTE) });
    objects.set(UPLOADS, lost.key, Buffer.from('x'), new Date(NOW.getTime() - 11 * MINUTE));
    expect(await run()).toEqual({ ...NOTHING, queuedMissedEvents: 1 });
    expect(moves.get(stuckSoon.imageId)?.status).toBe('uploaded');
  });

  it('queues nothing and reports nothing when all is well', async () => {
    image({ status: 'ready', updatedAt: ago(60 * MINUTE) });
    image({ updatedAt: ago(MINUTE) });
    expect(await run()).toEqual(NOTHING);
    expect(queue.queued).toEqual([]);
  });
});
