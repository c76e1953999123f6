import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { processMessages, type QueueDeps } from '../../../functions/optimizer/process-messages.ts';
import { newId } from '../../../functions/shared/ids.ts';
import { DEFAULT_VARIANTS } from '../../../functions/shared/variants.ts';
import {
  MemoryObjectStore,
  MemorySharedFiles,
  MemoryStatusMoves,
  pendingImage,
  quietLogger,
  sqsEvent,
} from '../../support/fakes.ts';

const UPLOADS = 'uploads-bucket';
const VARIANTS = 'variants-bucket';
const LIMITS = { maxInputPixels: 1_000_000, maxFrames: 10, timeoutMs: 10_000 };

/** A 16x12 JPEG: the smallest real photo the image core accepts. */
let photo: Buffer;
beforeAll(async () => {
  photo = await sharp({ create: { width: 16, height: 12, channels: 3, background: '#336699' } })
    .jpeg()
    .toBuffer();
});

describe('processMessages (the optimizer over one SQS batch)', () => {
  let moves: MemoryStatusMoves;
  let objects: MemoryObjectStore;
  let deps: QueueDeps;

  beforeEach(() => {
    moves = new MemoryStatusMoves();
    objects = new MemoryObjectStore();
    deps = {
      moves,
      sharedFiles: new MemorySharedFiles(),
      objects,
      uploadPrefix: 'uploads/',
      variantsBucket: VARIANTS,
      specs: DEFAULT_VARIANTS,
      limits: LIMITS,
      maxBytes: 1_000_000,
      maxReceiveCount: 3,
      logger: quietLogger,
    };
  });

  /** A pending image whose bytes landed in the upload bucket. */
  const uploaded = (bytes: Buffer, fields: { sha256?: string; size?: number } = {}) => {
    const item = moves.add(pendingImage(newId(), newId(), { size: bytes.length, ...fields }));
    objects.set(UPLOADS, item.key, bytes);
    return item;
  };

  it('reports exactly the transient failure, and finishes the good file and the bad one', async () => {
    const good = uploaded(photo);
    const flaky = uploaded(photo);
    const notAnImage = uploaded(Buffer.from('this is a text file, not a photo'));
    objects.failing.add(`${UPLOADS}/${flaky.key}`);

    const response = await processMessages(
      deps,
      sqsEvent([
        { messageId: 'm-good', bucket: UPLOADS, key: good.key },
        { messageId: 'm-flaky', bucket: UPLOADS, key: flaky.key },
        { messageId: 'm-bad', bucket: UPLOADS, key: notAnImage.key },
      ]),
    );

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm-flaky' }]);
    expect(moves.get(good.imageId)).toMatchObject({ status: 'ready', width: 16, height: 12 });
    expect(moves.get(good.imageId)?.variants?.map((v) => v.name)).toEqual(
      DEFAULT_VARIANTS.map((s) => s.name),
    );
    for (const variant of moves.get(good.imageId)?.variants ?? []) {
      expect(objects.objects.has(`${VARIANTS}/${variant.key}`)).toBe(true);
    }
    // The transient one stays in `processing` for the queue to deliver again.
    expect(moves.get(flaky.imageId)).toMatchObject({ status: 'processing', attempts: 1 });
    // The bad file is finished for good: failed, and not handed back to the queue.
    expect(moves.get(notAnImage.imageId)).toMatchObject({
      status: 'failed',
      error: { code: 'UnsupportedFormat' },
    });
  });

  it('marks the objects waiting behind the first landed before processing it; the first goes straight to processing', async () => {
    const first = uploaded(photo);
    const second = uploaded(photo);
    const third = uploaded(photo);
    await processMessages(
      deps,
      sqsEvent([
        { messageId: 'a', bucket: UPLOADS, key: first.key },
        { messageId: 'b', bucket: UPLOADS, key: second.key },
        { messageId: 'c', bucket: UPLOADS, key: third.key },
      ]),
    );
    expect(moves.calls.slice(0, 2)).toEqual(
      expect.arrayContaining([
        { method: 'advance', imageId: second.imageId, arg: 'uploaded' },
        { method: 'advance', imageId: third.imageId, arg: 'uploaded' },
      ]),
    );
    expect(moves.calls[2]).toEqual({ method: 'advance', imageId: first.imageId, arg: 'processing' });
    // An uploaded nobody could see is not written for the first.
    expect(moves.calls).not.toContainEqual({ method: 'advance', imageId: first.imageId, arg: 'uploaded' });
  });

  it('on the last receive, records ProcessingFailed as the optimizer and still lets the message go to the DLQ', async () => {
    const flaky = uploaded(photo);
    objects.failing.add(`${UPLOADS}/${flaky.key}`);
    const deliver = (receiveCount: number) =>
      processMessages(deps, sqsEvent([{ messageId: 'm', bucket: UPLOADS, key: flaky.key, receiveCount }]));

    // Before the last receive: retried, nothing final.
    expect((await deliver(2)).batchItemFailures).toEqual([{ itemIdentifier: 'm' }]);
    expect(moves.get(flaky.imageId)?.status).toBe('processing');

    const last = await deliver(3);
    expect(last.batchItemFailures).toEqual([{ itemIdentifier: 'm' }]);
    const item = moves.get(flaky.imageId);
    expect(item).toMatchObject({ status: 'failed', error: { code: 'ProcessingFailed' } });
    expect(item?.error?.message).toContain("the optimizer's last attempt");
    expect(item?.error?.message).not.toContain('reconciler');
  });

  it('fails a file whose stored bytes differ from what was declared, without retrying it', async () => {
    const short = uploaded(photo, { size: photo.length + 1 });
    const long = uploaded(photo, { size: photo.length - 1 });
    const tampered = uploaded(photo, { sha256: createHash('sha256').update('other bytes').digest('hex') });
    const response = await processMessages(
      deps,
      sqsEvent(
        [short, long, tampered].map((item) => ({ messageId: item.imageId, bucket: UPLOADS, key: item.key })),
      ),
    );
    expect(response.batchItemFailures).toEqual([]);
    expect(moves.get(short.imageId)?.error?.code).toBe('CorruptImage');
    expect(moves.get(long.imageId)?.error?.code).toBe('TooLarge');
    expect(moves.get(tampered.imageId)?.error?.code).toBe('ChecksumMismatch');
  });

  it('changes nothing for a duplicate of an event whose image is already final', async () => {
    const image = uploaded(photo);
    const event = sqsEvent([{ messageId: 'm', bucket: UPLOADS, key: image.key }]);
    await processMessages(deps, event);
    const ready = moves.get(image.imageId);
    const written = new Map(objects.objects);

    const again = await processMessages(deps, event);
    expect(again.batchItemFailures).toEqual([]);
    expect(moves.get(image.imageId)).toEqual(ready);
    expect(objects.objects).toEqual(written);
  });

  it('keeps the bytes it read beside the variants, and a retry removes what an interrupted attempt left', async () => {
    const image = uploaded(photo);
    const event = sqsEvent([{ messageId: 'm', bucket: UPLOADS, key: image.key }]);
    // An earlier attempt started, wrote a variant of other bytes, and died before settling.
    await moves.advance(image, 'processing');
    objects.set(VARIANTS, `${image.imageId}/0000000000000000/thumb.webp`, Buffer.from('stale'));

    await processMessages(deps, event);

    const ready = moves.get(image.imageId);
    expect(ready).toMatchObject({ status: 'ready', attempts: 2 });
    const kept = [...objects.objects.keys()].filter((id) => id.startsWith(`${VARIANTS}/`)).sort();
    expect(kept).toEqual(
      [...(ready?.variants ?? []).map((v) => v.key), ready?.originalKey]
        .map((key) => `${VARIANTS}/${key}`)
        .sort(),
    );
    expect(objects.objects.get(`${VARIANTS}/${ready?.originalKey}`)?.body).toEqual(photo);
    expect(objects.tags.get(`${VARIANTS}/${ready?.originalKey}`)).toEqual({ 'pipeline-state': 'original' });
    // The inbox is emptied.
    expect(objects.objects.has(`${UPLOADS}/${image.key}`)).toBe(false);
  });

  it('reads the bytes while the image moves to processing, not after', async () => {
    const image = uploaded(photo);
    // The move to `processing` answers only once the bytes have been asked for: a read that waited
    // for the move would never start.
    let read = () => {};
    const reading = new Promise<void>((resolve) => {
      read = resolve;
    });
    const watched = new Proxy(objects, {
      get(target, name) {
        const value = Reflect.get(target, name);
        if (name === 'get') read();
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const advance = moves.advance.bind(moves);
    moves.advance = async (...args) => {
      if (args[1] === 'processing') await reading;
      return advance(...args);
    };

    const event = sqsEvent([{ messageId: 'm', bucket: UPLOADS, key: image.key }]);
    expect((await processMessages({ ...deps, objects: watched }, event)).batchItemFailures).toEqual([]);
    expect(moves.get(image.imageId)).toMatchObject({ status: 'ready' });
  });

  it('leaves no file of a file that is not an image, though its bytes were kept while it was tried', async () => {
    const notAnImage = uploaded(Buffer.from('this is a text file, not a photo'));
    await processMessages(deps, sqsEvent([{ messageId: 'm', bucket: UPLOADS, key: notAnImage.key }]));

    expect(moves.get(notAnImage.imageId)).toMatchObject({
      status: 'failed',
      error: { code: 'UnsupportedFormat' },
    });
    expect([...objects.objects.keys()].filter((id) => id.startsWith(`${VARIANTS}/`))).toEqual([]);
  });

  it("keeps a ready image's original when another attempt at the same bytes fails after it", async () => {
    const image = uploaded(photo);
    const event = sqsEvent([{ messageId: 'm', bucket: UPLOADS, key: image.key }]);
    // A second delivery of the event starts beside the first, but reads the bytes only once the first
    // has made the image ready and the client has PUT the same bytes again; it then fails on them
    // (here: a pixel limit lowered meanwhile) after keeping them in the same folder.
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = new Proxy(objects, {
      get(target, name) {
        if (name === 'get') {
          return async (...args: Parameters<MemoryObjectStore['get']>) => {
            await released;
            return target.get(...args);
          };
        }
        const value = Reflect.get(target, name);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const second = processMessages(
      { ...deps, objects: held, limits: { ...LIMITS, maxInputPixels: 1 } },
      event,
    );
    await processMessages(deps, event);
    const ready = moves.get(image.imageId);
    expect(ready).toMatchObject({ status: 'ready', attempts: 2 });
    objects.set(UPLOADS, image.key, photo);
    release();
    await second;

    expect(moves.get(image.imageId)).toEqual(ready);
    expect(objects.objects.get(`${VARIANTS}/${ready?.originalKey}`)?.body).toEqual(photo);
    for (const variant of ready?.variants ?? []) {
      expect(objects.objects.has(`${VARIANTS}/${variant.key}`)).toBe(true);
    }
  });

  it('acknowledges a message that names no created object, and keys the pipeline did not make', async () => {
    const testEvent = sqsEvent([{ messageId: 'test', bucket: UPLOADS, key: 'x' }]);
    const record = testEvent.Records[0];
    if (!record) throw new Error('no record');
    record.body = JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: UPLOADS });
    expect((await processMessages(deps, testEvent)).batchItemFailures).toEqual([]);
    const stranger = sqsEvent([{ messageId: 'x', bucket: UPLOADS, key: 'uploads/not-ours.jpg' }]);
    expect((await processMessages(deps, stranger)).batchItemFailures).toEqual([]);
    expect(moves.calls).toEqual([]);
  });
});
