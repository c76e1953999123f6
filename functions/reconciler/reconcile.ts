import type { StatusMoves } from '../shared/fate/moves.ts';
import type { ImageRecords, OpenUploadsRepair } from '../shared/records/ports.ts';
import type { ImageItem } from '../shared/records/types.ts';
import { parseUploadKey } from '../shared/storage/object-keys.ts';
import type { ObjectStore } from '../shared/storage/ports.ts';

/** The work queue, as the reconciler uses it. */
export interface WorkQueue {
  /** Queues S3-notification-shaped messages for these uploaded objects. */
  enqueue(objects: readonly { bucket: string; key: string }[]): Promise<void>;
  /** The objects named by messages in the dead-letter queue (left there for operators). */
  deadLetters(max: number): Promise<{ bucket: string; key: string }[]>;
}

export interface ReconcileDeps {
  records: ImageRecords;
  moves: StatusMoves;
  objects: ObjectStore;
  queue: WorkQueue;
  quotas: OpenUploadsRepair;
  uploadBucket: string;
  uploadPrefix: string;
  logger: { info(message: string, ...extra: unknown[]): void };
  now?: () => Date;
}

export interface ReconcileOptions {
  /** An image in `uploaded` or `processing` untouched this long is queued again. */
  stuckAfterMs: number;
  /** A stored object whose record is still `pending` this long after it landed lost its event. */
  missedEventAfterMs: number;
  /** Processing attempts after which an image is failed for good (`ProcessingFailed`). */
  maxAttempts: number;
  /** Dead letters looked at in one run. */
  maxDeadLetters: number;
}

export interface ReconcileReport {
  /** Records failed as `ProcessingFailed` because their message reached the DLQ. */
  failedFromDeadLetters: number;
  /** Records failed as `ProcessingFailed` after too many attempts. */
  failedAfterAttempts: number;
  /** Records stuck in `uploaded` or `processing`, queued again. */
  requeuedStuck: number;
  /** Stored objects whose S3 event never arrived, queued. */
  queuedMissedEvents: number;
  /** Pending images whose URL ran out with nothing uploaded, settled as `expired`. */
  closedExpired: number;
  /** Owners whose count of open uploads had drifted from their records, corrected. */
  repairedOpenCounts: number;
}

/**
 * The reconciler's options from its configuration (`MAX_ATTEMPTS`, `RECONCILE_*`), with a schedule's
 * overrides of the two thresholds, in seconds.
 */
export function reconcileOptionsFrom(
  recovery: { stuckAfterSeconds: number; missedEventAfterSeconds: number; maxAttempts: number },
  overrides: { stuckAfterSeconds?: number | undefined; missedEventAfterSeconds?: number | undefined } = {},
): ReconcileOptions {
  return {
    stuckAfterMs: (overrides.stuckAfterSeconds ?? recovery.stuckAfterSeconds) * 1000,
    missedEventAfterMs: (overrides.missedEventAfterSeconds ?? recovery.missedEventAfterSeconds) * 1000,
    maxAttempts: recovery.maxAttempts,
    maxDeadLetters: 500,
  };
}

/** After its URL ran out, an upload that was under way may still land for a short while. */
const LATE_UPLOAD_GRACE_MS = 5 * 60_000;

/**
 * Brings every unfinished image back on the road to a final state: the one code path that heals
 * the deployed pipeline (scheduled) and the local stack (at start and on a timer). Every step is
 * idempotent; running it twice, or beside the optimizer, is safe.
 */
export async function reconcile(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport> {
  const now = (deps.now ?? (() => new Date()))();
  const report: ReconcileReport = {
    failedFromDeadLetters: 0,
    failedAfterAttempts: 0,
    requeuedStuck: 0,
    queuedMissedEvents: 0,
    closedExpired: 0,
    repairedOpenCounts: 0,
  };

  for (const letter of await deps.queue.deadLetters(options.maxDeadLetters)) {
    const ids = parseUploadKey(deps.uploadPrefix, letter.key);
    if (!ids) continue;
    const failed = await deps.moves.settle(ids, {
      status: 'failed',
      error: {
        code: 'ProcessingFailed',
        message:
          'Processing failed on every attempt (found in the dead-letter queue by the reconciler). Upload the file again in a new batch.',
      },
    });
    if (failed.applied) report.failedFromDeadLetters++;
  }

  const toQueue: ImageItem[] = [];
  const oldest = Math.min(options.stuckAfterMs, options.missedEventAfterMs);
  for await (const item of deps.records.listStale(new Date(now.getTime() - oldest).toISOString())) {
    const age = now.getTime() - Date.parse(item.updatedAt);
    if (item.status === 'pending') {
      const object = await deps.objects.head(deps.uploadBucket, item.key);
      if (object && now.getTime() - object.lastModified.getTime() >= options.missedEventAfterMs) {
        if ((await deps.moves.advance(item, 'uploaded')).applied) {
          toQueue.push(item);
          report.queuedMissedEvents++;
        }
      } else if (!object && Date.parse(item.uploadExpiresAt) + LATE_UPLOAD_GRACE_MS < now.getTime()) {
        if ((await deps.moves.settle(item, { status: 'expired' })).applied) report.closedExpired++;
      }
    } else if ((item.status === 'uploaded' || item.status === 'processing') && age >= options.stuckAfterMs) {
      if ((item.attempts ?? 0) >= options.maxAttempts) {
        const failed = await deps.moves.settle(item, {
          status: 'failed',
          error: {
            code: 'ProcessingFailed',
            message: `Processing was tried ${item.attempts} times without finishing (given up by the reconciler). Upload the file again.`,
          },
        });
        if (failed.applied) report.failedAfterAttempts++;
      } else if (await deps.moves.touch(item, item.status)) {
        toQueue.push(item);
        report.requeuedStuck++;
      }
    }
  }
  if (toQueue.length > 0) {
    await deps.queue.enqueue(toQueue.map((item) => ({ bucket: deps.uploadBucket, key: item.key })));
  }
  // After expired uploads were settled (each released its own), recount what is still off.
  report.repairedOpenCounts = await deps.quotas.repairOpenUploads();
  if (Object.values(report).some((count) => count > 0))
    deps.logger.info('Reconciled unfinished work', report);
  return report;
}
