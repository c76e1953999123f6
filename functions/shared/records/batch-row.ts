import type { Counts } from '../../../contract/index.ts';
import { batchKey } from './schema.ts';
import type { Row } from './table.ts';
import type { BatchRecord, StoredCounts } from './types.ts';

const STORED: readonly (keyof StoredCounts)[] = [
  'pending',
  'uploaded',
  'processing',
  'ready',
  'failed',
  'rejected',
  'expired',
];

/** The batch row keeps each count in a top-level number (`n_ready`), so that one ADD moves it. */
export const countAttribute = (status: keyof StoredCounts) => `n_${status}`;

export function toBatchRow(batch: BatchRecord): Row {
  const { counts, ...rest } = batch;
  const row: Row = { ...batchKey(batch.batchId), ...rest };
  for (const status of STORED) row[countAttribute(status)] = counts[status];
  return row;
}

export function fromBatchRow(row: Row): BatchRecord {
  const counts = Object.fromEntries(
    STORED.map((status) => [status, Number(row[countAttribute(status)] ?? 0)]),
  ) as StoredCounts;
  return {
    batchId: String(row.batchId),
    owner: String(row.owner),
    createdAt: String(row.createdAt),
    expiresAt: String(row.expiresAt),
    total: Number(row.total ?? 0),
    settled: Number(row.settled ?? 0),
    counts,
    pendingUntil: String(row.pendingUntil ?? row.expiresAt),
    version: Number(row.version ?? 0),
    ...(typeof row.completedAt === 'string' ? { completedAt: row.completedAt } : {}),
    ...(row.completions !== undefined ? { completions: Number(row.completions) } : {}),
    ...(typeof row.callbackUrl === 'string' ? { callbackUrl: row.callbackUrl } : {}),
  };
}

/**
 * The counts a reader sees now: stored `pending` items read `expired` once every upload URL of the
 * batch ran out (the reconciler then settles them for good).
 */
export function countsAt(batch: BatchRecord, now: Date): { counts: Counts; complete: boolean } {
  const lapsed = Date.parse(batch.pendingUntil) <= now.getTime();
  const counts: Counts = { ...batch.counts };
  if (lapsed) {
    counts.expired += counts.pending;
    counts.pending = 0;
  }
  const open = counts.pending + counts.uploaded + counts.processing;
  return { counts, complete: open === 0 };
}
