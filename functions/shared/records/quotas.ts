import { DeleteCommand, QueryCommand, UpdateCommand, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import type { OpenUploadsRepair, Quotas, RateVerdict, Reservation } from './ports.ts';
import { OPEN_SHARDS, openCounterKey, openCounterPartition, rateKey, TABLE_SCHEMA } from './schema.ts';
import { conditionHeld, type RecordsTable, type TransactItem } from './table.ts';

/**
 * The rate window is cut into this many slots; a request is counted against the slots that overlap
 * the last window (the current one included), so no span of one window ever admits more than the
 * limit, and a steady client is held to between `limit` per `window * (1 + 1/SLOTS)` and `limit` per window.
 */
const RATE_SLOTS = 12;
/** An owner whose open-upload counter has not moved for this long can be recounted safely. */
export const OPEN_COUNT_QUIET_MS = 60_000;
/** Recounts a refused reservation tries before it gives up (the owner's counter kept moving). */
const RECOUNT_ATTEMPTS = 5;
/** Longer than DynamoDB takes to drop an item from a global secondary index (typically well under a second). */
const INDEX_CATCH_UP_MS = 3_000;

/**
 * Quotas kept in the records table.
 *
 * - Requests: one row per owner holds a counter per slot of `window / RATE_SLOTS` seconds; each
 *   request adds one to its slot and reads every slot back in the same UpdateItem, then is admitted
 *   if the slots that overlap the last window hold at most `limit` (a sliding window: a burst at a
 *   window boundary cannot pass twice the limit, as a fixed window lets it).
 * - Open uploads: one counter row per owner, reserved atomically (a conditional ADD that holds only
 *   while `openCount <= max - n`) before a batch's records are written, and released in the same
 *   transaction that moves an image out of `pending` (landed, failed, expired or deleted). The
 *   reconciler recounts quiet owners from the `byOpenUpload` index and repairs drift (a crash
 *   between the reservation and the batch's write).
 */
export class DynamoQuotas implements Quotas, OpenUploadsRepair {
  readonly #table: RecordsTable;

  constructor(table: RecordsTable) {
    this.#table = table;
  }

  async hit(owner: string, limit: number, windowSeconds: number): Promise<RateVerdict> {
    const slotSeconds = windowSeconds / RATE_SLOTS;
    const nowSeconds = this.#table.now().getTime() / 1000;
    const slot = Math.floor(nowSeconds / slotSeconds);
    // Slots that left the window since the last request are dropped on the way (a client idle for
    // longer than two windows leaves stale slots behind; they are ignored, and the TTL removes the row).
    const stale = Array.from({ length: RATE_SLOTS }, (_, i) => `s${slot - RATE_SLOTS - 1 - i}`);
    const names: Record<string, string> = { '#ttl': TABLE_SCHEMA.ttlAttribute, '#now': `s${slot}` };
    stale.forEach((name, i) => {
      names[`#old${i}`] = name;
    });
    const { Attributes = {} } = await this.#table.client.send(
      new UpdateCommand({
        TableName: this.#table.name,
        Key: rateKey(owner),
        UpdateExpression: `ADD #now :one SET #ttl = :ttl REMOVE ${stale.map((_, i) => `#old${i}`).join(', ')}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':one': 1, ':ttl': Math.ceil(nowSeconds + windowSeconds * 2) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    // The slots overlapping the last window: the current one and the RATE_SLOTS before it.
    const counts = Array.from({ length: RATE_SLOTS + 1 }, (_, i) =>
      Number(Attributes[`s${slot - RATE_SLOTS + i}`] ?? 0),
    );
    const total = counts.reduce((sum, n) => sum + n, 0);
    if (total <= limit) return { allowed: true };
    // Admitted again once enough of the oldest slots have left the window.
    let left = total;
    for (const [i, count] of counts.entries()) {
      left -= count;
      if (left < limit) {
        // Slot `slot - RATE_SLOTS + i` stops overlapping the window when slot `slot + i + 1` begins.
        const leavesAt = (slot + i + 1) * slotSeconds;
        return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(leavesAt - nowSeconds)) };
      }
    }
    return { allowed: false, retryAfterSeconds: Math.ceil(windowSeconds) };
  }

  async reserveUploads(owner: string, count: number, max: number): Promise<Reservation> {
    if (count <= 0) return { reserved: true };
    if (count > max) return this.#refusal(owner);
    // Fast path: the counter alone leaves room (it may still count uploads whose URL ran out).
    if (await this.#tryChange(openUploadsChange(owner, count, this.#table.now(), max))) {
      return { reserved: true };
    }
    // Uploads whose URL ran out are not open any more, though they stay `pending` (and counted)
    // until the reconciler settles them: count them, and reserve against what is really open.
    for (let attempt = 1; attempt <= RECOUNT_ATTEMPTS; attempt++) {
      const row = await this.#table.get(openCounterKey(owner));
      const counted = Number(row?.openCount ?? 0);
      const lapsedReleases = Number(row?.lapsedReleases ?? 0);
      const lastLapsedRelease = Date.parse(String(row?.lapsedReleasedAt ?? ''));
      // The index may still list an upload that was released a moment ago: wait until it caught up.
      if (this.#table.now().getTime() - lastLapsedRelease < INDEX_CATCH_UP_MS) {
        return { reserved: false, open: counted, retryAfterSeconds: Math.ceil(INDEX_CATCH_UP_MS / 1000) };
      }
      const lapsed = await this.#countPending(owner, { lapsedOnly: true });
      if (counted - lapsed + count > max) return this.#refusal(owner, counted - lapsed);
      // Applied only if no reservation was added and no lapsed upload left since the counts were read.
      const now = this.#table.now().toISOString();
      const applied = await this.#tryChange({
        Key: openCounterKey(owner),
        UpdateExpression: 'ADD openCount :n SET changedAt = :now',
        ConditionExpression:
          'openCount <= :counted AND (attribute_not_exists(lapsedReleases) OR lapsedReleases = :released)',
        ExpressionAttributeValues: {
          ':n': count,
          ':now': now,
          ':counted': counted,
          ':released': lapsedReleases,
        },
      });
      if (applied) return { reserved: true };
      await this.#table.backoff(attempt);
    }
    return this.#refusal(owner);
  }

  #tryChange(change: Omit<UpdateCommandInput, 'TableName'>): Promise<boolean> {
    return conditionHeld(
      this.#table.client.send(new UpdateCommand({ TableName: this.#table.name, ...change })),
    );
  }

  async #refusal(owner: string, open?: number): Promise<Reservation> {
    const [row, nextExpiry] = await Promise.all([
      open === undefined ? this.#table.get(openCounterKey(owner)) : undefined,
      this.#nextExpiry(owner),
    ]);
    const nowMs = this.#table.now().getTime();
    const retryAfterSeconds =
      nextExpiry === undefined ? 60 : Math.max(1, Math.ceil((Date.parse(nextExpiry) - nowMs) / 1000));
    return { reserved: false, open: open ?? Number(row?.openCount ?? 0), retryAfterSeconds };
  }

  async releaseUploads(owner: string, count: number): Promise<void> {
    if (count <= 0) return;
    await this.#table.client.send(
      new UpdateCommand({
        TableName: this.#table.name,
        ...openUploadsChange(owner, -count, this.#table.now()),
      }),
    );
  }

  /**
   * Recounts every owner with a counter that has not moved for `OPEN_COUNT_QUIET_MS` (longer than a
   * batch takes to be written after its reservation) and sets it to what the index holds, unless it
   * moved meanwhile. Counters at zero are removed. Returns how many counters were corrected.
   */
  async repairOpenUploads(): Promise<number> {
    const quietBefore = new Date(this.#table.now().getTime() - OPEN_COUNT_QUIET_MS).toISOString();
    let repaired = 0;
    for (let shard = 0; shard < OPEN_SHARDS; shard++) {
      const rows = this.#table.query({
        KeyConditionExpression: 'pk = :pk',
        FilterExpression: 'changedAt < :quiet',
        ExpressionAttributeValues: { ':pk': openCounterPartition(shard), ':quiet': quietBefore },
      });
      for await (const row of rows) {
        const owner = String(row.sk);
        const seen = { count: Number(row.openCount ?? 0), changedAt: String(row.changedAt) };
        const actual = await this.#countPending(owner);
        if (actual === 0 && seen.count === 0) {
          await conditionHeld(
            this.#table.client.send(
              new DeleteCommand({
                TableName: this.#table.name,
                Key: openCounterKey(owner),
                ConditionExpression: 'changedAt = :seen AND openCount = :zero',
                ExpressionAttributeValues: { ':seen': seen.changedAt, ':zero': 0 },
              }),
            ),
          );
        } else if (actual !== seen.count) {
          const fixed = await conditionHeld(
            this.#table.client.send(
              new UpdateCommand({
                TableName: this.#table.name,
                Key: openCounterKey(owner),
                UpdateExpression: 'SET openCount = :actual, changedAt = :now',
                ConditionExpression: 'changedAt = :seen',
                ExpressionAttributeValues: {
                  ':actual': actual,
                  ':now': this.#table.now().toISOString(),
                  ':seen': seen.changedAt,
                },
              }),
            ),
          );
          if (fixed) repaired++;
        }
      }
    }
    return repaired;
  }

  /** The owner's images still `pending` (only those whose URL ran out), as the `byOpenUpload` index holds them. */
  async #countPending(owner: string, options: { lapsedOnly?: boolean } = {}): Promise<number> {
    const { indexName, partitionKey, sortKey } = TABLE_SCHEMA.indexes.byOpenUpload;
    const lapsed: { condition: string; names: Record<string, string>; values: Record<string, unknown> } =
      options.lapsedOnly
        ? {
            condition: ' AND #expires <= :now',
            names: { '#expires': sortKey },
            values: { ':now': this.#table.now().toISOString() },
          }
        : { condition: '', names: {}, values: {} };
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.#table.client.send(
        new QueryCommand({
          TableName: this.#table.name,
          IndexName: indexName,
          KeyConditionExpression: `#owner = :owner${lapsed.condition}`,
          ExpressionAttributeNames: { '#owner': partitionKey, ...lapsed.names },
          ExpressionAttributeValues: { ':owner': owner, ...lapsed.values },
          Select: 'COUNT',
          ExclusiveStartKey: startKey,
        }),
      );
      count += page.Count ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return count;
  }

  /** When the owner's next open upload URL runs out. */
  async #nextExpiry(owner: string): Promise<string | undefined> {
    const { indexName, partitionKey, sortKey } = TABLE_SCHEMA.indexes.byOpenUpload;
    const { Items } = await this.#table.client.send(
      new QueryCommand({
        TableName: this.#table.name,
        IndexName: indexName,
        KeyConditionExpression: '#owner = :owner AND #expires > :now',
        ExpressionAttributeNames: { '#owner': partitionKey, '#expires': sortKey },
        ExpressionAttributeValues: { ':owner': owner, ':now': this.#table.now().toISOString() },
        Limit: 1,
      }),
    );
    const next = Items?.[0]?.[sortKey];
    return typeof next === 'string' ? next : undefined;
  }
}

/**
 * The change to an owner's open-upload counter, for an UpdateItem or a transaction's Update: by
 * `delta`; when `max` is given, only while the result stays at most `max`; `lapsed` when the
 * upload released had run out already (a reservation counting lapsed uploads then counts again).
 */
export function openUploadsChange(owner: string, delta: number, now: Date, max?: number, lapsed = false) {
  const time = now.toISOString();
  return {
    Key: openCounterKey(owner),
    UpdateExpression: lapsed
      ? 'ADD openCount :delta, lapsedReleases :one SET changedAt = :now, lapsedReleasedAt = :now'
      : 'ADD openCount :delta SET changedAt = :now',
    ...(max === undefined
      ? {}
      : { ConditionExpression: 'attribute_not_exists(openCount) OR openCount <= :room' }),
    ExpressionAttributeValues: {
      ':delta': delta,
      ':now': time,
      ...(lapsed ? { ':one': 1 } : {}),
      ...(max === undefined ? {} : { ':room': max - delta }),
    },
  };
}

/** The same change as one item of a transaction (see `openUploadsChange`). */
export function openUploadsTransactItem(
  table: RecordsTable,
  owner: string,
  delta: number,
  options: { max?: number | undefined; lapsed?: boolean } = {},
): TransactItem {
  const change = openUploadsChange(owner, delta, table.now(), options.max, options.lapsed);
  return { Update: { TableName: table.name, ...change } };
}
