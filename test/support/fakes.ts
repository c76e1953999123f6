import { createHash } from 'node:crypto';
/**
 * In-memory fakes of the ports the use cases take (unit tier only). They keep the contract of each
 * port as its documentation states it, no more: the conditional writes themselves are proved
 * against a DynamoDB-compatible server in `test/integration/records/status-moves.test.ts`.
 */
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import type { WorkQueue } from '../../functions/reconciler/reconcile.ts';
import type { ImageRef, Outcome, StatusMoves } from '../../functions/shared/fate/moves.ts';
import { encodeEventKey } from '../../functions/shared/notify/s3-events.ts';
import type { ImageRecords, SharedFileRecords, SharedFiles } from '../../functions/shared/records/ports.ts';
import {
  FINAL_STATUSES,
  type ImageItem,
  STATUS_RANK,
  type StoredImageStatus,
  type TransitionResult,
} from '../../functions/shared/records/types.ts';
import { ObjectNotFoundError, ObjectTooLargeError } from '../../functions/shared/storage/errors.ts';
import type { ObjectHead, ObjectStore, StoredObject } from '../../functions/shared/storage/ports.ts';

export const quietLogger = { info() {}, warn() {}, error() {} };

/** Images by id, moved forward only, as `StatusMoves` promises; every call is recorded. */
export class MemoryStatusMoves implements StatusMoves {
  readonly images = new Map<string, ImageItem>();
  readonly calls: { method: string; imageId: string; arg: unknown }[] = [];
  readonly now: () => Date;
  constructor(now: () => Date = () => new Date('2026-01-01T00:00:00Z')) {
    this.now = now;
  }

  add(item: ImageItem): ImageItem {
    this.images.set(item.imageId, { ...item });
    return item;
  }

  get(imageId: string): ImageItem | undefined {
    return this.images.get(imageId);
  }

  #apply(image: ImageRef, change: (item: ImageItem) => ImageItem | undefined): TransitionResult {
    const item = this.images.get(image.imageId);
    if (!item || item.batchId !== image.batchId) return { applied: false, reason: 'missing' };
    const updated = change(item);
    if (!updated) return { applied: false, reason: 'stale', item };
    this.images.set(item.imageId, updated);
    return { applied: true, item: updated };
  }

  async advance(image: ImageRef, to: 'uploaded' | 'processing'): Promise<TransitionResult> {
    this.calls.push({ method: 'advance', imageId: image.imageId, arg: to });
    const time = this.now().toISOString();
    return this.#apply(image, (item) => {
      if (to === 'processing' && item.status === 'processing') {
        return { ...item, updatedAt: time, attempts: (item.attempts ?? 0) + 1 };
      }
      if (STATUS_RANK[item.status] >= STATUS_RANK[to]) return undefined;
      return {
        ...item,
        status: to,
        updatedAt: time,
        ...(to === 'processing' ? { attempts: (item.attempts ?? 0) + 1 } : {}),
      };
    });
  }

  async settle(image: ImageRef, outcome: Outcome): Promise<TransitionResult> {
    this.calls.push({ method: 'settle', imageId: image.imageId, arg: outcome });
    const time = this.now().toISOString();
    return this.#apply(image, (item) => {
      if (FINAL_STATUSES.has(item.status)) return undefined;
      if (outcome.status === 'expired' && item.status !== 'pending') return undefined;
      if (outcome.status === 'ready') return { ...item, ...outcome.facts, status: 'ready', updatedAt: time };
      if (outcome.status === 'failed')
        return { ...item, status: 'failed', error: outcome.error, updatedAt: time };
      return { ...item, status: 'expired', updatedAt: time };
    });
  }

  async reopen(image: ImageRef, uploadExpiresAt: string): Promise<TransitionResult> {
    this.calls.push({ method: 'reopen', imageId: image.imageId, arg: uploadExpiresAt });
    return this.#apply(image, (item) =>
      item.status === 'pending' || item.status === 'expired'
        ? { ...item, status: 'pending', uploadExpiresAt }
        : undefined,
    );
  }

  async remove(image: ImageRef): Promise<ImageItem | undefined> {
    this.calls.push({ method: 'remove', imageId: image.imageId, arg: undefined });
    const item = this.images.get(image.imageId);
    this.images.delete(image.imageId);
    return item;
  }

  async touch(image: ImageRef, status: StoredImageStatus): Promise<boolean> {
    this.calls.push({ method: 'touch', imageId: image.imageId, arg: status });
    const time = this.now().toISOString();
    return this.#apply(image, (item) => (item.status === status ? { ...item, updatedAt: time } : undefined))
      .applied;
  }
}

/** The stale-image query over the same map the moves change. */
export class MemoryImageRecords implements ImageRecords {
  readonly moves: MemoryStatusMoves;
  constructor(moves: MemoryStatusMoves) {
    this.moves = moves;
  }
  async getImage(imageId: string) {
    return this.moves.get(imageId);
  }
  async getImageByKey(batchId: string, imageId: string) {
    const item = this.moves.get(imageId);
    return item?.batchId === batchId ? item : undefined;
  }
  async *listStale(updatedBefore: string): AsyncIterable<ImageItem> {
    for (const item of [...this.moves.images.values()]) {
      if (FINAL_STATUSES.has(item.status)) continue;
      if (item.updatedAt < updatedBefore) yield item;
    }
  }
}

/** Buckets of objects; a key listed in `failing` fails every call the way a flaky network does. */
export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, { body: Buffer; contentType: string; lastModified: Date }>();
  readonly failing = new Set<string>();
  readonly tags = new Map<string, Record<string, string>>();

  #id = (bucket: string, key: string) => `${bucket}/${key}`;
  #check(bucket: string, key: string) {
    if (this.failing.has(this.#id(bucket, key))) throw new Error('socket hang up (injected)');
  }

  set(bucket: string, key: string, body: Buffer, lastModified = new Date('2026-01-01T00:00:00Z')) {
    this.objects.set(this.#id(bucket, key), { body, contentType: 'image/jpeg', lastModified });
  }

  async get(bucket: string, key: string, maxBytes: number): Promise<StoredObject> {
    this.#check(bucket, key);
    const object = this.objects.get(this.#id(bucket, key));
    if (!object) throw new ObjectNotFoundError(bucket, key);
    if (object.body.length > maxBytes)
      throw new ObjectTooLargeError(bucket, key, object.body.length, maxBytes);
    const etag = createHash('md5').update(object.body).digest('hex');
    return { body: object.body, contentType: object.contentType, size: object.body.length, etag };
  }

  async head(bucket: string, key: string): Promise<ObjectHead | undefined> {
    this.#check(bucket, key);
    const object = this.objects.get(this.#id(bucket, key));
    return object && { size: object.body.length, lastModified: object.lastModified };
  }

  async put(
    bucket: string,
    key: string,
    body: Buffer,
    contentType: string,
    tag?: { key: string; value: string },
  ): Promise<void> {
    this.#check(bucket, key);
    this.objects.set(this.#id(bucket, key), { body, contentType, lastModified: new Date() });
    if (tag) this.tags.set(this.#id(bucket, key), { [tag.key]: tag.value });
  }

  async copyIfUnchanged(
    from: { bucket: string; key: string; etag: string },
    to: { bucket: string; key: string },
    contentType: string,
    tag?: { key: string; value: string },
  ): Promise<boolean> {
    this.#check(to.bucket, to.key);
    const source = this.objects.get(this.#id(from.bucket, from.key));
    if (!source || createHash('md5').update(source.body).digest('hex') !== from.etag) return false;
    await this.put(to.bucket, to.key, source.body, contentType, tag);
    return true;
  }

  async deleteUnder(bucket: string, prefix: string): Promise<void> {
    for (const id of [...this.objects.keys()])
      if (id.startsWith(`${bucket}/${prefix}`)) this.objects.delete(id);
  }

  async delete(bucket: string, keys: readonly string[]): Promise<void> {
    for (const key of keys) this.objects.delete(this.#id(bucket, key));
  }

  async *list(bucket: string, prefix: string): AsyncIterable<string> {
    for (const id of this.objects.keys()) {
      if (id.startsWith(`${bucket}/${prefix}`)) yield id.slice(bucket.length + 1);
    }
  }
}

export class MemorySharedFiles implements SharedFileRecords {
  readonly offered: Omit<SharedFiles, 'refs'>[] = [];
  async find() {
    return new Map<string, SharedFiles>();
  }
  async offer(_owner: string, files: Omit<SharedFiles, 'refs'>) {
    this.offered.push(files);
  }
  async retain() {
    return false;
  }
  async release() {
    return undefined;
  }
}

/** What the reconciler queued, and the dead letters it is shown. */
export class MemoryWorkQueue implements WorkQueue {
  readonly queued: { bucket: string; key: string }[] = [];
  letters: { bucket: string; key: string }[] = [];
  async enqueue(objects: readonly { bucket: string; key: string }[]) {
    this.queued.push(...objects);
  }
  async deadLetters(max: number) {
    return this.letters.slice(0, max);
  }
}

/** A pending image record as the API writes it. */
export function pendingImage(
  batchId: string,
  imageId: string,
  fields: Partial<ImageItem> = {},
  prefix = 'uploads/',
): ImageItem {
  return {
    batchId,
    itemId: imageId,
    imageId,
    index: 0,
    owner: 'alice',
    name: `${imageId}.jpg`,
    status: 'pending',
    type: 'image/jpeg',
    size: 1,
    key: `${prefix}${batchId}/${imageId}`,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    uploadExpiresAt: '2026-01-01T00:15:00.000Z',
    ...fields,
  };
}

/** An SQS event as Lambda hands it to the optimizer: one S3 notification per record. */
export function sqsEvent(
  records: { messageId: string; bucket: string; key: string; receiveCount?: number }[],
): SQSEvent {
  return {
    Records: records.map(
      ({ messageId, bucket, key, receiveCount = 1 }) =>
        ({
          messageId,
          receiptHandle: messageId,
          body: JSON.stringify({
            Records: [
              {
                eventName: 'ObjectCreated:Put',
                s3: { bucket: { name: bucket }, object: { key: encodeEventKey(key) } },
              },
            ],
          }),
          attributes: {
            ApproximateReceiveCount: String(receiveCount),
            SentTimestamp: '0',
            SenderId: 'test',
            ApproximateFirstReceiveTimestamp: '0',
          },
          messageAttributes: {},
          md5OfBody: '',
          eventSource: 'aws:sqs',
          eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:work',
          awsRegion: 'us-east-1',
        }) satisfies SQSRecord,
    ),
  };
}
