import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import sharp from 'sharp';
import { DynamoImageRecords } from '../../functions/shared/records/image-records.ts';
import { RecordsTable } from '../../functions/shared/records/table.ts';
import { readLocalSettings } from '../../local/settings.ts';
import { type LocalStack, startLocalStack } from '../../local/stack.ts';
import { corpusFile } from '../support/corpus.ts';
import { type FaultProxy, type ProxiedRequest, startFaultProxy } from '../support/fault-proxy.ts';
import { LOCAL_CREDENTIALS, localS3Client } from '../support/local-clients.ts';
import { removeDir } from '../support/stack-process.ts';

export const UPLOAD_BUCKET = 'photo-intake-uploads';

/** A PUT of an original (through a presigned URL), not one of the handlers' own S3 calls. */
export const isUploadPut = (req: ProxiedRequest) =>
  req.method === 'PUT' &&
  req.path.startsWith(`/${UPLOAD_BUCKET}/uploads/`) &&
  req.path.includes('X-Amz-Signature');

/** The object key a presigned PUT writes. */
export const keyOf = (req: ProxiedRequest) =>
  decodeURIComponent(req.path.split('?')[0] ?? '').slice(UPLOAD_BUCKET.length + 2);

export interface ClientStack {
  stack: LocalStack;
  /** Between every client (and handler) and the S3 server: upload URLs point at it. */
  s3: FaultProxy;
  /** Keys of every upload PUT that reached the proxy, in order (repeats included). */
  puts: string[];
  /** How many times processing started for an image. */
  attempts(batchId: string, imageId: string): Promise<number | undefined>;
  /** Whether the S3 server holds an original. */
  stored(key: string): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * The local stack in this process, with the fault proxy in front of its S3 server; `env` is set
 * before the handlers load (e.g. `UPLOAD_URL_TTL_SECONDS`). A spy records every upload PUT.
 */
export async function startClientStack(env: Record<string, string> = {}): Promise<ClientStack> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'photo-intake-client-'));
  Object.assign(process.env, env);
  const settings = readLocalSettings({
    PORT: '0',
    DATA_DIR: dataDir,
    OPTIMIZER_CONCURRENCY: '2',
    QUEUE_VISIBILITY_TIMEOUT_SECONDS: '5',
    // These tests are about the clients: a slow decode on a busy machine must not fail a photo.
    PROCESSING_TIMEOUT_MS: '120000',
    LOG_LEVEL: 'SILENT',
  });
  let s3: FaultProxy | undefined;
  let s3Server = '';
  const stack = await startLocalStack(settings, () => {}, {
    wrapEndpoint: async (service, endpoint) => {
      if (service !== 's3') return endpoint;
      s3Server = endpoint;
      s3 = await startFaultProxy(endpoint);
      return s3.endpoint;
    },
  });
  if (!s3) throw new Error('no S3 proxy');
  const proxy = s3;
  const puts: string[] = [];
  proxy.inject({
    match: (req) => {
      if (isUploadPut(req)) puts.push(keyOf(req));
      return false;
    },
    times: Infinity,
  });
  const dynamo = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region: 'us-east-1',
      endpoint: stack.dynamodbEndpoint,
      credentials: LOCAL_CREDENTIALS,
    }),
  );
  const records = new DynamoImageRecords(new RecordsTable(dynamo, { tableName: 'photo-intake' }), {
    retentionSeconds: 3600,
  });
  const objects = localS3Client(s3Server);
  return {
    stack,
    s3: proxy,
    puts,
    attempts: async (batchId, imageId) => (await records.getImageByKey(batchId, imageId))?.attempts,
    async stored(key) {
      try {
        await objects.send(new HeadObjectCommand({ Bucket: UPLOAD_BUCKET, Key: key }));
        return true;
      } catch {
        // Once processed, the bytes leave the upload inbox and are kept beside their variants.
        const imageId = key.split('/').at(-1) as string;
        const kept = await objects.send(
          new ListObjectsV2Command({ Bucket: 'photo-intake-variants', Prefix: `${imageId}/` }),
        );
        return (kept.KeyCount ?? 0) > 0;
      }
    },
    async stop() {
      await stack.stop();
      await proxy.stop();
      objects.destroy();
      await removeDir(dataDir);
    },
  };
}

/**
 * `count` different photos (JPEG, 640 px wide, made from a corpus photo with a different hue
 * each), written to a fresh folder; returns their paths.
 */
export async function makePhotos(count: number, prefix = 'photo'): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'photo-intake-photos-'));
  await mkdir(dir, { recursive: true });
  const base = await sharp(corpusFile('valid/sharp--Landscape_1.jpg')).resize({ width: 640 }).toBuffer();
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const file = path.join(dir, `${prefix}-${String(i).padStart(3, '0')}.jpg`);
      await writeFile(
        file,
        await sharp(base)
          .modulate({ hue: i * 7, brightness: 1 + i / 500 })
          .jpeg({ quality: 80 })
          .toBuffer(),
      );
      return file;
    }),
  );
}

/** Picks a deterministic share of requests (by sequence number), at most `perKey` times per key. */
export function everyNth(share: number, perKey: number) {
  let seen = 0;
  const per = new Map<string, number>();
  return (key: string): boolean => {
    seen++;
    // Spread evenly: request n is picked when floor(n * share) moves on.
    const picked = Math.floor(seen * share) > Math.floor((seen - 1) * share);
    const count = per.get(key) ?? 0;
    if (!picked || count >= perKey) return false;
    per.set(key, count + 1);
    return true;
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
