/**
 * Where the time of a 500-file POST and of a 500-item ready batch read goes, step by step: the API's
 * own use cases and adapters run in this process against an in-process DynamoDB emulator (dynalite
 * on LevelDB in a temp dir, as the local stack runs it), each port call timed from its first call to
 * its last completion. No HTTP gateway, no JSON over the wire: this isolates the handler's work.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createBatch } from '../../functions/api/presign/create-batch.ts';
import { getBatch } from '../../functions/api/status/queries.ts';
import { DynamoStatusMoves } from '../../functions/shared/fate/moves.ts';
import { DynamoImageRecords } from '../../functions/shared/records/image-records.ts';
import { DynamoQuotas } from '../../functions/shared/records/quotas.ts';
import { DynamoSharedFiles } from '../../functions/shared/records/shared-files.ts';
import { RecordsTable } from '../../functions/shared/records/table.ts';
import { Sha256 } from '../../functions/shared/sha256.ts';
import type { ObjectStore } from '../../functions/shared/storage/ports.ts';
import { S3UrlSigner } from '../../functions/shared/storage/s3-url-signer.ts';
import { ensureTable, startDynamoServer } from '../../local/emulators/dynamodb.ts';
import { removeDir } from '../../test/support/stack-process.ts';
import { realisticFiles } from './files.ts';
import { distribution } from './stats.ts';

const TABLE = 'bench-breakdown';
const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** Times every call of every method of `target` under `prefix.<method>`: the wall span from the
 * first call that starts to the last that ends, per measured operation (so parallel calls count once). */
class StepTimer {
  readonly #spans = new Map<string, { start: number; end: number; calls: number }>();
  readonly samples = new Map<string, number[]>();

  wrap<T extends object>(target: T, prefix: string, methods: readonly (keyof T & string)[]): T {
    for (const name of methods) {
      const original = (target[name] as (...args: unknown[]) => Promise<unknown>).bind(target);
      (target as Record<string, unknown>)[name] = async (...args: unknown[]) => {
        const key = `${prefix}.${name}`;
        const span = this.#spans.get(key) ?? { start: performance.now(), end: 0, calls: 0 };
        span.calls++;
        this.#spans.set(key, span);
        try {
          return await original(...args);
        } finally {
          span.end = performance.now();
        }
      };
    }
    return target;
  }

  /** Forgets everything recorded so far. */
  reset() {
    this.#spans.clear();
    this.samples.clear();
  }

  /** Closes one measured operation: records each step's span and the total. */
  commit(totalMs: number) {
    for (const [key, span] of this.#spans) {
      const label = span.calls > 1 ? `${key} (x${span.calls})` : key;
      const list = this.samples.get(label) ?? [];
      list.push(span.end - span.start);
      this.samples.set(label, list);
    }
    const total = this.samples.get('total') ?? [];
    total.push(totalMs);
    this.samples.set('total', total);
    this.#spans.clear();
  }
}

export interface BreakdownRow {
  operation: string;
  step: string;
  p50: number;
  p95: number;
}

/** Runs `iterations` 500-file POSTs and 500-item ready batch reads in process; p50/p95 per step. */
export async function apiBreakdown(iterations: number): Promise<BreakdownRow[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'photo-intake-breakdown-'));
  const server = await startDynamoServer({ directory: dir });
  const raw = new DynamoDBClient({
    region: REGION,
    endpoint: server.endpoint,
    credentials: CREDENTIALS,
    sha256: Sha256,
  });
  const dynamo = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
  const s3 = new S3Client({
    region: REGION,
    endpoint: 'http://127.0.0.1:9',
    forcePathStyle: true,
    credentials: CREDENTIALS,
    sha256: Sha256,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    await ensureTable(raw, TABLE);
    const timer = new StepTimer();
    const table = new RecordsTable(dynamo, { tableName: TABLE });
    const records = timer.wrap(new DynamoImageRecords(table, { retentionSeconds: 86_400 }), 'records', [
      'createBatch',
      'getBatch',
      'listItems',
    ]);
    const sharedFiles = timer.wrap(new DynamoSharedFiles(table), 'sharedFiles', ['find']);
    const moves = new DynamoStatusMoves(table, { retentionSeconds: 86_400 });
    const signer = timer.wrap(new S3UrlSigner(s3), 'signer', ['presignPut', 'presignGet']);
    const quotas = timer.wrap(new DynamoQuotas(table), 'quotas', ['reserveUploads']);
    const uploads = {
      batches: records,
      sharedFiles,
      signer,
      quotas,
      uploadBucket: 'uploads',
      uploadPrefix: 'uploads/',
      limits: {
        maxFilesPerBatch: 500,
        maxBytes: 50 * 2 ** 20,
        acceptedTypes: ['image/jpeg', 'image/png', 'image/webp', 'image/heic', 'image/heif'],
        uploadUrlTtlSeconds: 900,
        maxOpenUploads: 1_000_000,
      },
      callbacks: { check: async () => {} },
      metrics: { filesRequested: () => {} },
    };
    const rows: BreakdownRow[] = [];
    const collect = (operation: string) => {
      for (const [step, samples] of timer.samples) {
        const d = distribution(samples.slice(Math.min(3, samples.length - 1)));
        rows.push({ operation, step, p50: d.p50, p95: d.p95 });
      }
      timer.reset();
    };

    // POST: 3 warm-up runs (dropped by `collect`), then `iterations`; a new owner every 10.
    for (let i = 0; i < iterations + 3; i++) {
      const files = realisticFiles(500, 5000 + i);
      const started = performance.now();
      await createBatch(uploads, `breakdown-${Math.floor(i / 10)}`, { files });
      timer.commit(performance.now() - started);
    }
    collect('POST 500 files (createBatch)');

    // A ready batch: 500 ready items with 3 variants each, written straight to the table.
    const seeded = await createBatch(uploads, 'breakdown-reader', { files: realisticFiles(500, 9999) });
    const page = await records.listItems(seeded.batchId, { limit: 500 });
    for (const item of page.items) {
      if (item.status !== 'pending') continue;
      await moves.advance(item, 'processing');
      await moves.settle(item, {
        status: 'ready',
        facts: {
          width: 4032,
          height: 3024,
          format: 'jpeg',
          placeholder: 'x'.repeat(40),
          variants: [
            {
              name: 'thumb',
              format: 'webp',
              width: 320,
              height: 240,
              size: 10_000,
              key: `${item.imageId}/thumb.webp`,
            },
            {
              name: 'medium',
              format: 'webp',
              width: 1280,
              height: 960,
              size: 90_000,
              key: `${item.imageId}/medium.webp`,
            },
            {
              name: 'large',
              format: 'jpeg',
              width: 1440,
              height: 1080,
              size: 200_000,
              key: `${item.imageId}/large.jpg`,
            },
          ],
        },
      });
    }
    timer.reset();
    const status = {
      batches: records,
      images: records,
      moves,
      sharedFiles,
      signer,
      objects: {} as ObjectStore,
      uploadBucket: 'uploads',
      variantsBucket: 'variants',
      uploadUrlTtlSeconds: 900,
      maxOpenUploads: 5000,
      quotas,
    };
    for (let i = 0; i < iterations + 3; i++) {
      const started = performance.now();
      const tagged = await getBatch(status, 'breakdown-reader', seeded.batchId, { limit: '500' });
      JSON.stringify(await tagged.render());
      timer.commit(performance.now() - started);
    }
    collect('GET 500 ready items, one page, URLs cached');
    // The first read of a batch signs every variant URL: a new signer (empty URL cache) each run.
    for (let i = 0; i < iterations + 3; i++) {
      const coldSigner = timer.wrap(new S3UrlSigner(s3), 'signer', ['presignGet']);
      const started = performance.now();
      const tagged = await getBatch({ ...status, signer: coldSigner }, 'breakdown-reader', seeded.batchId, {
        limit: '500',
      });
      JSON.stringify(await tagged.render());
      timer.commit(performance.now() - started);
    }
    collect('GET 500 ready items, one page, URLs not cached');
    return rows;
  } finally {
    raw.destroy();
    s3.destroy();
    await server.stop();
    await removeDir(dir);
  }
}
