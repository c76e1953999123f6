import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { validateUploadRequest } from '../../../functions/api/presign/validate.ts';
import { processMessages, queueDepsFrom } from '../../../functions/optimizer/process-messages.ts';
import { reconcile, reconcileOptionsFrom } from '../../../functions/reconciler/reconcile.ts';
import { ConfigError, parseConfig } from '../../../functions/shared/config.ts';
import { newId } from '../../../functions/shared/ids.ts';
import { DEFAULT_VARIANTS } from '../../../functions/shared/variants.ts';
import {
  MemoryImageRecords,
  MemoryObjectStore,
  MemorySharedFiles,
  MemoryStatusMoves,
  MemoryWorkQueue,
  pendingImage,
  quietLogger,
  sqsEvent,
} from '../../support/fakes.ts';

const REQUIRED = { TABLE_NAME: 't', UPLOAD_BUCKET: 'uploads-bucket', VARIANTS_BUCKET: 'variants-bucket' };
const config = (env: Record<string, string> = {}) => parseConfig({ ...REQUIRED, ...env });

/** Each setting the README lists for the functions, a value other than its default, and where it lands. */
describe('every setting in the README is read', () => {
  it('has the README defaults', () => {
    const c = config();
    expect(c.limits).toEqual({
      maxFilesPerBatch: 500,
      maxBytes: 52_428_800,
      acceptedTypes: [
        'image/jpeg',
        'image/png',
        'image/webp',
        'image/avif',
        'image/gif',
        'image/tiff',
        'image/heic',
        'image/heif',
      ],
      uploadUrlTtlSeconds: 900,
      recordRetentionDays: 30,
      maxOpenUploads: 5000,
      requestsPerMinute: 1200,
    });
    expect(c.processing).toEqual({
      variants: DEFAULT_VARIANTS,
      maxInputPixels: 100_000_000,
      maxFrames: 200,
      timeoutMs: 60_000,
      maxReceiveCount: 5,
    });
    expect(c.recovery).toEqual({ stuckAfterSeconds: 900, missedEventAfterSeconds: 600, maxAttempts: 10 });
  });

  it.each([
    ['MAX_FILES_PER_BATCH', '7', (c: ReturnType<typeof config>) => c.limits.maxFilesPerBatch, 7],
    ['MAX_BYTES', '1234', (c: ReturnType<typeof config>) => c.limits.maxBytes, 1234],
    [
      'ACCEPTED_TYPES',
      'image/png, image/gif',
      (c: ReturnType<typeof config>) => c.limits.acceptedTypes,
      ['image/png', 'image/gif'],
    ],
    ['UPLOAD_URL_TTL_SECONDS', '60', (c: ReturnType<typeof config>) => c.limits.uploadUrlTtlSeconds, 60],
    ['MAX_INPUT_PIXELS', '100', (c: ReturnType<typeof config>) => c.processing.maxInputPixels, 100],
    ['MAX_FRAMES', '2', (c: ReturnType<typeof config>) => c.processing.maxFrames, 2],
    ['PROCESSING_TIMEOUT_MS', '1500', (c: ReturnType<typeof config>) => c.processing.timeoutMs, 1500],
    ['MAX_OPEN_UPLOADS', '3', (c: ReturnType<typeof config>) => c.limits.maxOpenUploads, 3],
    ['REQUESTS_PER_MINUTE', '9', (c: ReturnType<typeof config>) => c.limits.requestsPerMinute, 9],
    ['RECORD_RETENTION_DAYS', '2', (c: ReturnType<typeof config>) => c.limits.recordRetentionDays, 2],
    ['MAX_RECEIVE_COUNT', '2', (c: ReturnType<typeof config>) => c.processing.maxReceiveCount, 2],
    ['MAX_ATTEMPTS', '4', (c: ReturnType<typeof config>) => c.recovery.maxAttempts, 4],
    [
      'RECONCILE_STUCK_AFTER_SECONDS',
      '30',
      (c: ReturnType<typeof config>) => c.recovery.stuckAfterSeconds,
      30,
    ],
    [
      'RECONCILE_MISSED_EVENT_AFTER_SECONDS',
      '40',
      (c: ReturnType<typeof config>) => c.recovery.missedEventAfterSeconds,
      40,
    ],
  ])('%s=%s', (name, value, read, expected) => {
    expect(read(config({ [name]: value }))).toEqual(expected);
  });

  it('reads VARIANTS as a JSON list of specs', () => {
    const variants = [{ name: 'tiny', width: 8, height: 8, format: 'webp', quality: 50 }];
    expect(config({ VARIANTS: JSON.stringify(variants) }).processing.variants).toMatchObject(variants);
  });

  it.each([
    ['MAX_INPUT_PIXELS', '0'],
    ['MAX_BYTES', 'lots'],
    ['VARIANTS', '{not json'],
    ['MAX_RECEIVE_COUNT', '1.5'],
  ])('stops at a bad %s=%s with a message naming it', (name, value) => {
    expect(() => config({ [name]: value })).toThrow(ConfigError);
    expect(() => config({ [name]: value })).toThrow(name === 'VARIANTS' ? /VARIANTS/ : new RegExp(name));
  });
});

describe('and used where it matters', () => {
  let photo: Buffer; // 16 x 12 = 192 pixels
  let animation: Buffer; // 3 frames of 4 x 4
  beforeAll(async () => {
    photo = await sharp({ create: { width: 16, height: 12, channels: 3, background: '#123456' } })
      .jpeg()
      .toBuffer();
    const strip = Buffer.alloc(4 * 4 * 3 * 3);
    for (let f = 0; f < 3; f++) strip.fill(f * 80, f * 48, (f + 1) * 48);
    animation = await sharp(strip, { raw: { width: 4, height: 12, channels: 3, pageHeight: 4 } })
      .gif({ delay: [100, 100, 100] })
      .toBuffer();
  });

  /** The optimizer as handler.ts builds it from this environment, over fakes; runs one upload. */
  async function optimize(env: Record<string, string>, bytes: Buffer, receiveCount = 1) {
    const moves = new MemoryStatusMoves();
    const objects = new MemoryObjectStore();
    const deps = queueDepsFrom(
      config(env),
      { moves, objects, sharedFiles: new MemorySharedFiles() },
      quietLogger,
    );
    const item = moves.add(pendingImage(newId(), newId(), { size: bytes.length }));
    objects.set('uploads-bucket', item.key, bytes);
    if (env.FAIL_READS) objects.failing.add(`uploads-bucket/${item.key}`);
    const response = await processMessages(
      deps,
      sqsEvent([{ messageId: 'm', bucket: 'uploads-bucket', key: item.key, receiveCount }]),
    );
    return { item: moves.get(item.imageId), response, objects };
  }

  it('MAX_INPUT_PIXELS is the cap the image core applies', async () => {
    expect((await optimize({ MAX_INPUT_PIXELS: '191' }, photo)).item).toMatchObject({
      status: 'failed',
      error: { code: 'TooManyPixels' },
    });
    expect((await optimize({ MAX_INPUT_PIXELS: '192' }, photo)).item?.status).toBe('ready');
  });

  it('MAX_FRAMES is the frame cap the image core applies', async () => {
    expect((await optimize({ MAX_FRAMES: '2' }, animation)).item?.error?.code).toBe('TooManyFrames');
    expect((await optimize({ MAX_FRAMES: '3' }, animation)).item?.status).toBe('ready');
  });

  it('PROCESSING_TIMEOUT_MS is the time limit handed to the image core', () => {
    const deps = queueDepsFrom(
      config({ PROCESSING_TIMEOUT_MS: '1500' }),
      {
        moves: new MemoryStatusMoves(),
        objects: new MemoryObjectStore(),
        sharedFiles: new MemorySharedFiles(),
      },
      quietLogger,
    );
    expect(deps.limits.timeoutMs).toBe(1500);
  });

  it('VARIANTS are the variants made, and only they', async () => {
    const variants = [{ name: 'tiny', width: 8, height: 8, format: 'webp', quality: 50 }];
    const { item, objects } = await optimize({ VARIANTS: JSON.stringify(variants) }, photo);
    expect(item?.variants?.map(({ name, format, width }) => ({ name, format, width }))).toEqual([
      { name: 'tiny', format: 'webp', width: 8 },
    ]);
    // Beside the one variant, only the original it was made from is kept.
    const kept = [...objects.objects.keys()].filter((key) => key.startsWith('variants-bucket/')).sort();
    expect(kept).toEqual(
      [
        ...(item?.variants ?? []).map((v) => `variants-bucket/${v.key}`),
        `variants-bucket/${item?.originalKey}`,
      ].sort(),
    );
    expect(kept.filter((key) => key.endsWith('.webp'))).toHaveLength(1);
    expect(kept[0]).toMatch(new RegExp(`^variants-bucket/${item?.imageId}/[0-9a-f]{16}/`));
  });

  it('MAX_BYTES is the largest stored file the optimizer reads', async () => {
    expect((await optimize({ MAX_BYTES: String(photo.length - 1) }, photo)).item?.error?.code).toBe(
      'TooLarge',
    );
    expect((await optimize({ MAX_BYTES: String(photo.length) }, photo)).item?.status).toBe('ready');
  });

  it('MAX_RECEIVE_COUNT is the receive on which the optimizer gives up', async () => {
    expect((await optimize({ MAX_RECEIVE_COUNT: '3', FAIL_READS: '1' }, photo, 2)).item?.status).toBe(
      'processing',
    );
    expect((await optimize({ MAX_RECEIVE_COUNT: '2', FAIL_READS: '1' }, photo, 2)).item).toMatchObject({
      status: 'failed',
      error: { code: 'ProcessingFailed' },
    });
  });

  it('MAX_ATTEMPTS and RECONCILE_STUCK_AFTER_SECONDS decide when the reconciler gives up', async () => {
    const now = new Date('2026-05-01T08:00:00.000Z');
    const run = async (env: Record<string, string>, attempts: number, idleSeconds: number) => {
      const moves = new MemoryStatusMoves(() => now);
      const item = moves.add(
        pendingImage(newId(), newId(), {
          status: 'processing',
          attempts,
          updatedAt: new Date(now.getTime() - idleSeconds * 1000).toISOString(),
        }),
      );
      await reconcile(
        {
          records: new MemoryImageRecords(moves),
          moves,
          objects: new MemoryObjectStore(),
          queue: new MemoryWorkQueue(),
          quotas: { repairOpenUploads: async () => 0 },
          uploadBucket: 'uploads-bucket',
          uploadPrefix: 'uploads/',
          logger: quietLogger,
          now: () => now,
        },
        reconcileOptionsFrom(config(env).recovery),
      );
      return moves.get(item.imageId)?.status;
    };
    expect(await run({ MAX_ATTEMPTS: '4', RECONCILE_STUCK_AFTER_SECONDS: '30' }, 4, 40)).toBe('failed');
    expect(await run({ MAX_ATTEMPTS: '5', RECONCILE_STUCK_AFTER_SECONDS: '30' }, 4, 40)).toBe('processing');
    expect(await run({ MAX_ATTEMPTS: '4', RECONCILE_STUCK_AFTER_SECONDS: '41' }, 4, 40)).toBe('processing');
    // A schedule's override wins over the setting.
    expect(reconcileOptionsFrom(config().recovery, { stuckAfterSeconds: 2 }).stuckAfterMs).toBe(2000);
    expect(reconcileOptionsFrom(config().recovery, { missedEventAfterSeconds: 0 }).missedEventAfterMs).toBe(
      0,
    );
    expect(reconcileOptionsFrom(config().recovery).missedEventAfterMs).toBe(600_000);
  });

  it('MAX_FILES_PER_BATCH, MAX_BYTES and ACCEPTED_TYPES are the limits a request is validated with', () => {
    const { limits } = config({ MAX_FILES_PER_BATCH: '2', MAX_BYTES: '100', ACCEPTED_TYPES: 'image/png' });
    const file = { name: 'a.png', type: 'image/png', size: 100 };
    expect(() => validateUploadRequest({ files: [file, file, file] }, limits)).toThrow(
      expect.objectContaining({ code: 'TooManyFiles' }),
    );
    const results = validateUploadRequest(
      { files: [file, { ...file, size: 101 }, { ...file, type: 'image/jpeg' }] },
      { ...limits, maxFilesPerBatch: 3 },
    ).files;
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(['ok', 'TooLarge', 'UnsupportedType']);
  });
});
