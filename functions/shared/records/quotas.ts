import { DeleteCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
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
/** After its URL runs out, an upload is released once the reconciler settles it as expired. */
const EXPIRY_RELEASE_DELAY_SECONDS = 300;

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
        const leavesAt = (slot - RATE_SLOTS + i + RATE_SLOTS + 1) * slotSeconds;
        return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(leavesAt - nowSeconds)) };
      }
    }
    return { allowed: false, retryAfterSeconds: Math.ceil(windowSeconds) };
  }

  async reserveUploads(owner: string, count: number, max: number): Promise<Reservation> {
    if (count <= 0) return { reserved: true };
    const reserved =
      count <= max &&
      (await conditionHeld(
        this.#table.client.send(
          new UpdateCommand({
            TableName: this.#table.name,
            ...openUploadsChange(owner, count, this.#table.now(), max),
          }),
        ),
      ));
    if (reserved) return { reserved: true };
    const [row, nextExpiry] = await Promise.all([
      this.#table.get(openCounterKey(owner)),
      this.#nextExpiry(owner),
    ]);
    const nowMs = this.#table.now().getTime();
    const retryAfterSeconds =
      nextExpiry === undefined
        ? 60
        : Math.max(1, Math.ceil((Date.parse(nextExpiry) - nowMs) / 1000) + EXPIRY_RELEASE_DELAY_SECONDS);
    return { reserved: false, open: Number(row?.openCount ?? 0), retryAfterSeconds };
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

  /** The owner's images still `pending`, as the sparse `byOpenUpload` index holds them. */
  async #countPending(owner: string): Promise<number> {
    const { indexName, partitionKey } = TABLE_SCHEMA.indexes.byOpenUpload;
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.#table.client.send(
        new QueryCommand({
          TableName: this.#table.name,
          IndexName: indexName,
          KeyConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': partitionKey },
          ExpressionAttributeValues: { ':owner': owner },
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
 * `delta`, and, when `max` is given, only while the result stays at most `max`.
 */
export function openUploadsChange(owner: string, delta: number, now: Date, max?: number) {
  return {
    Key: openCounterKey(owner),
    UpdateExpression: 'ADD openCount :delta SET changedAt = :now',
    ...(max === undefined
      ? {}
      : { ConditionExpression: 'attribute_not_exists(openCount) OR openCount <= :room' }),
    ExpressionAttributeValues: {
      ':delta': delta,
      ':now': now.toISOString(),
      ...(max === undefined ? {} : { ':room': max - delta }),
    },
  };
}

/** The same change as one item of a transaction. */
export function openUploadsTransactItem(
  table: RecordsTable,
  owner: string,
  delta: number,
  max?: number,
): TransactItem {
  return { Update: { TableName: table.name, ...openUploadsChange(owner, delta, table.now(), max) } };
}
