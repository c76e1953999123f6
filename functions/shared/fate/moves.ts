import { countAttribute, fromBatchRow } from '../records/batch-row.ts';
import { RecordsWriteError } from '../records/errors.ts';
import { openUploadsTransactItem } from '../records/quotas.ts';
import { batchKey, itemKey, openShard, outboxKey, TABLE_SCHEMA } from '../records/schema.ts';
import { epochSeconds, fromRow, type RecordsTable, type Row, type TransactItem } from '../records/table.ts';
import {
  type BatchRecord,
  type FailureInfo,
  FINAL_STATUSES,
  type ImageItem,
  type ReadyFacts,
  readyFacts,
  STATUS_RANK,
  type StoredImageStatus,
  type TransitionResult,
} from '../records/types.ts';
import { type BatchCompletedEvent, batchEventId, imageEventId, type PipelineEvent } from './events.ts';

/** Enough of an image to find it. */
export interface ImageRef {
  batchId: string;
  imageId: string;
}

/** How an image ends. */
export type Outcome =
  | { status: 'ready'; facts: ReadyFacts }
  | { status: 'failed'; error: FailureInfo }
  | { status: 'expired' };

/**
 * Every change of an image's status, and so of its batch's counts. Each is one DynamoDB transaction
 * over the image, its batch and (for a final state) the outbox, conditioned on the status it read:
 * a move that raced another is read again and decided again, never applied twice.
 */
export interface StatusMoves {
  /** `pending` -> `uploaded` -> `processing`; entering `processing` again (a retry) counts an attempt. */
  advance(
    image: ImageRef,
    to: 'uploaded' | 'processing',
    facts?: { landedAt?: string | undefined },
  ): Promise<TransitionResult>;
  /**
   * The one place an image reaches a final state (see `settle` below). `seen`: the image as the
   * caller last had it (the optimizer, from its own `advance`), which saves reading it again; a stale
   * one only costs a refused write and a fresh read.
   */
  settle(image: ImageRef, outcome: Outcome, seen?: ImageItem): Promise<TransitionResult>;
  /**
   * A fresh upload URL for an image still waiting for its bytes (`pending`, or settled `expired`).
   * An `expired` image counts as open again: refused (`quota`) when the owner already has
   * `maxOpenUploads` open.
   */
  reopen(image: ImageRef, uploadExpiresAt: string, maxOpenUploads: number): Promise<TransitionResult>;
  /** Takes the image out of its batch (DELETE); false when it was gone already. */
  remove(image: ImageRef): Promise<ImageItem | undefined>;
  /** Marks work as looked after now, if still in this status; false if it moved on. */
  touch(image: ImageRef, status: StoredImageStatus): Promise<boolean>;
}

/** What one move does to the image row, decided from the image and batch as read. */
interface Plan {
  to: StoredImageStatus;
  /** The image row's update (the status condition is added). */
  set: Record<string, unknown>;
  remove?: string[];
  add?: Record<string, number>;
  /** Rank written with the status; defaults to the status's own. */
  rank?: number;
  /** The batch's `settled` count moves by this much. */
  settledDelta: number;
  /** When the move makes the image open again, the owner's most open uploads. */
  openMax?: number;
  /** Extra batch attributes to set (and to remove). */
  batchSet?: Record<string, unknown>;
  batchRemove?: string[];
  /** Batch attributes that must still hold the values the decision was made on. */
  batchExpect?: Record<string, number>;
  events?: (item: ImageItem) => PipelineEvent[];
}

type Decision = Plan | { refuse: 'stale' };

const MAX_ATTEMPTS = 12;
const OUTBOX_RETENTION_SECONDS = 14 * 86_400;

/** The DynamoDB implementation of `StatusMoves` over the single table. */
export class DynamoStatusMoves implements StatusMoves {
  readonly #table: RecordsTable;
  readonly #retentionSeconds: number;

  constructor(table: RecordsTable, options: { retentionSeconds: number }) {
    this.#table = table;
    this.#retentionSeconds = options.retentionSeconds;
  }

  advance(
    image: ImageRef,
    to: 'uploaded' | 'processing',
    facts: { landedAt?: string | undefined } = {},
  ): Promise<TransitionResult> {
    return this.#move(
      image,
      (item) => {
        const now = this.#table.now().toISOString();
        // When the bytes landed: S3's own time when the event says, else when the pipeline heard of it.
        const landedAt = item.landedAt ?? facts.landedAt ?? now;
        if (to === 'processing' && item.status === 'processing') {
          // A retry after a crash or a transient error starts here; it changes no count.
          return { to, set: { updatedAt: now, startedAt: now }, add: { attempts: 1 }, settledDelta: 0 };
        }
        // Not forward: refused, and a move to where the image already is too (a second `uploaded`, from
        // a repeated event or the reconciler racing the notification): the first landing stands, and
        // the caller learns the move was not its own (the reconciler queues only what it moved).
        if (STATUS_RANK[item.status] >= STATUS_RANK[to]) return { refuse: 'stale' };
        return {
          to,
          // Out of `pending`: no longer one of the owner's open uploads.
          ...(item.status === 'pending' ? { remove: ['openOwner'] } : {}),
          set:
            to === 'uploaded'
              ? { status: to, updatedAt: now, landedAt }
              : { status: to, updatedAt: now, landedAt, startedAt: now },
          ...(to === 'processing' ? { add: { attempts: 1 } } : {}),
          settledDelta: 0,
        };
      },
      { imageOnly: true },
    );
  }

  /**
   * Moves an image to `ready`, `failed` or `expired`, exactly once: the image's status, the batch's
   * counts and, when this was the batch's last open item, its `completedAt`, change in one
   * transaction with the outbox rows that tell of them ("image finished", "batch completed"), so a
   * crash right after cannot lose the events, and a repeat finds the image final and changes nothing.
   */
  settle(image: ImageRef, outcome: Outcome, seen?: ImageItem): Promise<TransitionResult> {
    return this.#move(
      image,
      (item) => {
        if (FINAL_STATUSES.has(item.status)) return { refuse: 'stale' };
        if (outcome.status === 'expired' && item.status !== 'pending') return { refuse: 'stale' };
        const now = this.#table.now();
        const time = now.toISOString();
        const base = { to: outcome.status, settledDelta: 1 } as const;
        const imageEvent = (finished: ImageItem): PipelineEvent[] =>
          outcome.status === 'expired' ? [] : [imageFinished(finished, time)];
        switch (outcome.status) {
          case 'ready': {
            return {
              ...base,
              // A ready image is kept until deleted.
              set: { status: 'ready', updatedAt: time, ...readyFacts(outcome.facts) },
              remove: [TABLE_SCHEMA.ttlAttribute, 'error', 'openOwner', 'openShard'],
              // Nor is its batch removed while it holds one: DELETE and the batch's status need it.
              batchRemove: [TABLE_SCHEMA.ttlAttribute],
              events: imageEvent,
            };
          }
          case 'failed':
            return {
              ...base,
              set: {
                status: 'failed',
                updatedAt: time,
                error: outcome.error,
                [TABLE_SCHEMA.ttlAttribute]: epochSeconds(now) + this.#retentionSeconds,
              },
              remove: ['openOwner', 'openShard'],
              events: imageEvent,
            };
          case 'expired':
            return {
              ...base,
              set: { status: 'expired', updatedAt: time },
              remove: ['openOwner', 'openShard'],
            };
        }
      },
      { seen },
    );
  }

  reopen(image: ImageRef, uploadExpiresAt: string, maxOpenUploads: number): Promise<TransitionResult> {
    return this.#move(image, (item, batch) => {
      const time = this.#table.now().toISOString();
      // Kept as long past the new URL's end as past the first one's (RECORD_RETENTION_DAYS), and so
      // is its batch, or TTL could remove them while the new URL still works; a batch holding a ready
      // image has no TTL (ready images are kept until deleted), and keeps none, as long as it holds one.
      const expiresAtEpoch = epochSeconds(new Date(uploadExpiresAt)) + this.#retentionSeconds;
      const ttl = { [TABLE_SCHEMA.ttlAttribute]: expiresAtEpoch };
      const holdsReady = (batch?.counts.ready ?? 0) > 0;
      const batchSide = holdsReady
        ? { batchSet: { pendingUntil: uploadExpiresAt } }
        : {
            batchSet: { pendingUntil: uploadExpiresAt, ...ttl },
            batchExpect: { [countAttribute('ready')]: 0 },
          };
      if (item.status === 'pending') {
        return {
          to: 'pending',
          set: { uploadExpiresAt, updatedAt: time, ...ttl },
          settledDelta: 0,
          ...batchSide,
        };
      }
      if (item.status !== 'expired') return { refuse: 'stale' };
      // Settled as expired, now waiting again: it counts as open, and the batch is no longer complete.
      return {
        to: 'pending',
        rank: STATUS_RANK.pending,
        set: {
          status: 'pending',
          uploadExpiresAt,
          updatedAt: time,
          ...ttl,
          openOwner: item.owner,
          openShard: openShard(item.imageId),
        },
        settledDelta: -1,
        openMax: maxOpenUploads,
        ...batchSide,
        batchRemove: ['completedAt'],
      };
    });
  }

  async remove(image: ImageRef): Promise<ImageItem | undefined> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const read = await this.#read(image, { withBatch: true });
      if (!read?.batch) return undefined;
      const { item, batch } = read;
      const wasFinal = FINAL_STATUSES.has(item.status);
      const after = { total: batch.total - 1, settled: batch.settled - (wasFinal ? 1 : 0) };
      const completing = !batch.completedAt && after.settled === after.total;
      const events = completing ? [batchCompleted(batch, item.status, undefined, this.#table.now())] : [];
      const applied = await this.#table.transact([
        {
          Delete: {
            TableName: this.#table.name,
            Key: itemKey(image.batchId, image.imageId),
            ConditionExpression: '#status = :from',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':from': item.status },
          },
        },
        this.#batchUpdate(
          image.batchId,
          batch,
          { from: item.status, to: undefined, settledDelta: wasFinal ? -1 : 0 },
          {
            totalDelta: -1,
            completing,
            exact: true,
          },
        ),
        ...events.map((event) => this.#outboxPut(event)),
        // A deleted `pending` image gives its open upload back.
        ...(item.status === 'pending'
          ? [openUploadsTransactItem(this.#table, item.owner, -1, { lapsed: this.#lapsed(item) })]
          : []),
      ]);
      if (applied) return item;
      await this.#table.backoff(attempt);
    }
    throw new RecordsWriteError(`Could not delete image ${image.imageId}: its batch kept changing`);
  }

  async touch(image: ImageRef, status: StoredImageStatus): Promise<boolean> {
    const result = await this.#move(
      image,
      (item) =>
        item.status === status
          ? { to: status, set: { updatedAt: this.#table.now().toISOString() }, settledDelta: 0 }
          : { refuse: 'stale' },
      { imageOnly: true },
    );
    return result.applied;
  }

  /**
   * Reads the image (and its batch), decides, and applies the decision if nothing moved meanwhile.
   * A move that cannot change the batch's `settled` count (`advance`, `touch`) reads only the image at
   * first: its batch update only adds to counts, so it depends on nothing the batch holds.
   */
  async #move(
    image: ImageRef,
    decide: (item: ImageItem, batch: BatchRecord | undefined) => Decision,
    options: { imageOnly?: boolean; seen?: ImageItem | undefined } = {},
  ) {
    let withBatch = !options.imageOnly;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const seen = attempt === 1 ? options.seen : undefined;
      const read = await this.#read(image, { withBatch: withBatch || seen !== undefined, seen });
      if (!read) return { applied: false, reason: 'missing' } as const;
      const { item } = read;
      const plan = decide(item, read.batch);
      if ('refuse' in plan) return { applied: false, reason: 'stale', item } as const;
      // From here on (a refused write, or a plan that settles after all), read the batch too.
      withBatch = true;
      const { batch } = read;
      if (!batch && plan.settledDelta !== 0) continue;
      const updated = applyPlan(item, plan);
      const completing =
        batch !== undefined && plan.settledDelta > 0 && batch.settled + plan.settledDelta === batch.total;
      const now = this.#table.now();
      const events = [
        ...(plan.events?.(updated) ?? []),
        ...(completing ? [batchCompleted(batch, item.status, plan.to, now)] : []),
      ];
      // The owner's open uploads follow the image in and out of `pending`, in the same transaction.
      const openDelta = (plan.to === 'pending' ? 1 : 0) - (item.status === 'pending' ? 1 : 0);
      const items = [
        this.#imageUpdate(image, item.status, plan),
        this.#batchUpdate(
          image.batchId,
          batch,
          { from: item.status, to: plan.to, settledDelta: plan.settledDelta },
          {
            totalDelta: 0,
            completing,
            exact: completing,
            batchSet: plan.batchSet,
            batchRemove: plan.batchRemove,
            batchExpect: plan.batchExpect,
          },
        ),
        ...events.map((event) => this.#outboxPut(event)),
      ];
      if (openDelta !== 0) {
        items.push(
          openUploadsTransactItem(this.#table, item.owner, openDelta, {
            max: plan.openMax,
            lapsed: openDelta < 0 && this.#lapsed(item),
          }),
        );
      }
      const result = await this.#table.transactOrRefusal(items);
      if (result.applied) return { applied: true, item: updated } as const;
      if (openDelta > 0 && result.refused.every((index) => index === items.length - 1)) {
        return { applied: false, reason: 'quota', item } as const;
      }
      await this.#table.backoff(attempt);
    }
    throw new RecordsWriteError(`Could not move image ${image.imageId}: it or its batch kept changing`);
  }

  /** Whether a `pending` image's upload URL has run out (it no longer counts as open). */
  #lapsed(item: ImageItem): boolean {
    return Date.parse(item.uploadExpiresAt) <= this.#table.now().getTime();
  }

  /**
   * The image and, `withBatch`, its batch, as they are now; undefined when either is missing. `seen`
   * stands for the image (the caller's own recent copy) and saves reading it.
   */
  async #read(
    image: ImageRef,
    options: { withBatch: boolean; seen?: ImageItem | undefined },
  ): Promise<{ item: ImageItem; batch: BatchRecord | undefined } | undefined> {
    const [itemRow, batchRow] = await Promise.all([
      options.seen ? undefined : this.#table.get(itemKey(image.batchId, image.imageId)),
      options.withBatch ? this.#table.get(batchKey(image.batchId)) : undefined,
    ]);
    const item =
      options.seen ??
      (itemRow && typeof itemRow.imageId === 'string' ? fromRow<ImageItem>(itemRow) : undefined);
    if (!item || (options.withBatch && !batchRow)) return undefined;
    return { item, batch: batchRow ? fromBatchRow(batchRow) : undefined };
  }

  #imageUpdate(image: ImageRef, from: StoredImageStatus, plan: Plan): TransactItem {
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, unknown> = { ':from': from };
    const name = (attribute: string) => {
      if (attribute === 'status') return '#status';
      const alias = `#n${Object.keys(names).length}`;
      names[alias] = attribute;
      return alias;
    };
    const value = (v: unknown) => {
      const alias = `:v${Object.keys(values).length}`;
      values[alias] = v;
      return alias;
    };
    const set = Object.entries(plan.set).map(([attribute, v]) => `${name(attribute)} = ${value(v)}`);
    if (plan.to !== from || plan.rank !== undefined) {
      set.push(`statusRank = ${value(plan.rank ?? STATUS_RANK[plan.to])}`);
    }
    const add = Object.entries(plan.add ?? {}).map(([attribute, by]) => `${name(attribute)} ${value(by)}`);
    const remove = (plan.remove ?? []).map(name);
    return {
      Update: {
        TableName: this.#table.name,
        Key: itemKey(image.batchId, image.imageId),
        UpdateExpression: [
          `SET ${set.join(', ')}`,
          add.length > 0 ? `ADD ${add.join(', ')}` : '',
          remove.length > 0 ? `REMOVE ${remove.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join(' '),
        ConditionExpression: 'attribute_exists(pk) AND #status = :from',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      },
    };
  }

  /**
   * The batch's side of a move: counts, `settled`, `version`, and `completedAt` when this move
   * completes it. A move that completes the batch (or a DELETE) requires the exact counts it read; any
   * other final move only requires that it is not the last one, so moves of one batch rarely collide.
   */
  #batchUpdate(
    batchId: string,
    /** The batch as read; only a move that settles or completes depends on it. */
    batch: Pick<BatchRecord, 'settled' | 'total'> | undefined,
    move: { from: StoredImageStatus; to: StoredImageStatus | undefined; settledDelta: number },
    options: {
      totalDelta: number;
      completing: boolean;
      exact: boolean;
      batchSet?: Record<string, unknown> | undefined;
      batchRemove?: string[] | undefined;
      batchExpect?: Record<string, number> | undefined;
    },
  ): TransactItem {
    const adds = new Map<string, number>([['version', 1]]);
    const bump = (attribute: string, by: number) => adds.set(attribute, (adds.get(attribute) ?? 0) + by);
    if (move.to !== move.from) {
      bump(countAttribute(move.from), -1);
      if (move.to) bump(countAttribute(move.to), 1);
    }
    if (move.settledDelta !== 0) bump('settled', move.settledDelta);
    if (options.totalDelta !== 0) bump('total', options.totalDelta);
    if (options.completing) bump('completions', 1);
    const values: Record<string, unknown> = {};
    const add = [...adds]
      .filter(([, by]) => by !== 0)
      .map(([attribute, by], i) => {
        values[`:d${i}`] = by;
        return `${attribute === 'total' ? '#total' : attribute} :d${i}`;
      });
    const set = Object.entries(options.batchSet ?? {}).map(([attribute, value], i) => {
      values[`:s${i}`] = value;
      return `${attribute} = :s${i}`;
    });
    if (options.completing) {
      values[':completedAt'] = this.#table.now().toISOString();
      set.push('completedAt = :completedAt');
    }
    // Counts move by ADD, which commutes: only whether this move completes the batch depends on what
    // was read, so only a move toward completion (or a DELETE) is conditioned on it.
    let condition = 'attribute_exists(pk)';
    if ((options.exact || move.settledDelta > 0) && !batch) {
      throw new Error('A move that settles or completes an image needs its batch as read');
    }
    if (options.exact && batch) {
      Object.assign(values, { ':settled': batch.settled, ':total': batch.total });
      condition += ' AND settled = :settled AND #total = :total';
    } else if (move.settledDelta > 0 && batch) {
      Object.assign(values, { ':lastButOne': batch.total - 1, ':total': batch.total });
      condition += ' AND settled < :lastButOne AND #total = :total';
    }
    for (const [i, [attribute, expected]] of Object.entries(options.batchExpect ?? {}).entries()) {
      values[`:e${i}`] = expected;
      condition += ` AND ${attribute} = :e${i}`;
    }
    return {
      Update: {
        TableName: this.#table.name,
        Key: batchKey(batchId),
        UpdateExpression: [
          `ADD ${add.join(', ')}`,
          set.length > 0 ? `SET ${set.join(', ')}` : '',
          (options.batchRemove ?? []).length > 0 ? `REMOVE ${(options.batchRemove ?? []).join(', ')}` : '',
        ]
          .filter(Boolean)
          .join(' '),
        ConditionExpression: condition,
        ...(condition.includes('#total') || add.some((a) => a.startsWith('#total'))
          ? { ExpressionAttributeNames: { '#total': 'total' } }
          : {}),
        ExpressionAttributeValues: values,
      },
    };
  }

  #outboxPut(event: PipelineEvent): TransactItem {
    return {
      Put: {
        TableName: this.#table.name,
        Item: {
          ...outboxKey(event.id),
          event,
          // A safety net only: the relay removes each row once its event is handed on.
          [TABLE_SCHEMA.ttlAttribute]: epochSeconds(this.#table.now()) + OUTBOX_RETENTION_SECONDS,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
  }
}

function applyPlan(item: ImageItem, plan: Plan): ImageItem {
  const updated: Row = { ...item, ...plan.set };
  for (const attribute of plan.remove ?? []) delete updated[attribute];
  for (const [attribute, by] of Object.entries(plan.add ?? {})) {
    updated[attribute] = Number(updated[attribute] ?? 0) + by;
  }
  return fromRow<ImageItem>(updated);
}

function imageFinished(item: ImageItem, time: string): PipelineEvent {
  const status = item.status === 'ready' ? 'ready' : 'failed';
  return {
    id: imageEventId(item.imageId, status),
    type: status === 'ready' ? 'image.ready' : 'image.failed',
    time,
    owner: item.owner,
    batchId: item.batchId,
    imageId: item.imageId,
    name: item.name,
    ...(item.landedAt ? { landedAt: item.landedAt } : {}),
    ...(item.startedAt ? { startedAt: item.startedAt } : {}),
    ...(status === 'ready'
      ? {
          width: item.width,
          height: item.height,
          format: item.format,
          variants: (item.variants ?? []).map(({ key: _key, ...variant }) => variant),
        }
      : { error: item.error }),
  } as PipelineEvent;
}

/** The batch as it stands once this move is applied: every item final. */
function batchCompleted(
  batch: BatchRecord,
  from: StoredImageStatus,
  to: StoredImageStatus | undefined,
  now: Date,
): BatchCompletedEvent {
  const counts = { ...batch.counts };
  counts[from] -= 1;
  if (to) counts[to] += 1;
  const completion = (batch.completions ?? 0) + 1;
  return {
    id: batchEventId(batch.batchId, completion),
    type: 'batch.completed',
    time: now.toISOString(),
    owner: batch.owner,
    batchId: batch.batchId,
    total: batch.total - (to ? 0 : 1),
    counts,
    ...(batch.callbackUrl ? { callbackUrl: batch.callbackUrl } : {}),
  };
}
