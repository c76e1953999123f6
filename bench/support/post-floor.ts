/**
 * The floor of `POST /v1/uploads`: the work no implementation of it can skip, measured in the same
 * run and against the same servers as the POST itself. For a 500-file batch that is writing the
 * same 501 rows (the batch and one per file) with BatchWriteItem, 25 a request and 8 requests at a
 * time as the service does, to the DynamoDB server the stack uses, plus signing the 500 upload URLs
 * with the service's own `S3UrlSigner`. The floor is the sum of the two (the POST may overlap them).
 *
 * The rows are the service's own: its `createBatch` use case and `DynamoImageRecords` build them,
 * over a table that captures the rows instead of writing them and ports that find no duplicates and
 * no open uploads; the signing requests are the ones that use case asks for. Building them is not
 * timed; only the write and the signing are.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createBatch } from '../../functions/api/presign/create-batch.ts';
import { parseConfig } from '../../functions/shared/config.ts';
import { DynamoImageRecords } from '../../functions/shared/records/image-records.ts';
import { RecordsTable, type Row } from '../../functions/shared/records/table.ts';
import { Sha256 } from '../../functions/shared/sha256.ts';
import type { PresignPutRequest } from '../../functions/shared/storage/ports.ts';
import { S3UrlSigner } from '../../functions/shared/storage/s3-url-signer.ts';
import type { DeclaredFile } from './files.ts';

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
/** The local stack's upload bucket (local/stack.ts); signing costs the same for any name. */
const UPLOAD_BUCKET = 'photo-intake-uploads';
/** As functions/shared/records/table.ts writes. */
const ROWS_PER_REQUEST = 25;
const REQUESTS_AT_ONCE = 8;

export interface FloorSample {
  /** BatchWriteItem of every row. */
  writeMs: number;
  /** `presignPut` of every upload. */
  signMs: number;
  /** The floor: write + sign. */
  totalMs: number;
  rows: number;
  urls: number;
}

export interface PostFloor {
  /** Builds the rows and URL requests of a POST of `files` (untimed), then writes and signs them. */
  sample(owner: string, files: readonly DeclaredFile[]): Promise<FloorSample>;
  close(): void;
}

const chunk = <T>(items: readonly T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

/** Connects to the stack's DynamoDB and S3 endpoints with clients set up as the service's are. */
export function postFloor(endpoints: { dynamodb: string; s3: string; tableName: string }): PostFloor {
  // The service's settings for the limits and the retention (functions/shared/config.ts defaults);
  // no limit on open uploads, which the floor does not count.
  const config = parseConfig({
    TABLE_NAME: endpoints.tableName,
    UPLOAD_BUCKET,
    VARIANTS_BUCKET: 'unused',
    MAX_OPEN_UPLOADS: '1000000',
  });
  // As functions/shared/clients.ts builds them for the local stack, with the local credentials.
  const dynamo = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region: REGION,
      endpoint: endpoints.dynamodb,
      credentials: CREDENTIALS,
      sha256: Sha256,
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  const s3 = new S3Client({
    region: REGION,
    endpoint: endpoints.s3,
    forcePathStyle: true,
    credentials: CREDENTIALS,
    sha256: Sha256,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  // One signer for the run, as one per API process.
  const signer = new S3UrlSigner(s3);

  /** The service's rows and signing requests for one POST, without writing or signing anything. */
  const prepare = async (owner: string, files: readonly DeclaredFile[]) => {
    const rows: Row[] = [];
    const requests: PresignPutRequest[] = [];
    const capture = new RecordsTable(dynamo, { tableName: endpoints.tableName });
    capture.putAll = async (written) => {
      rows.push(...written);
    };
    await createBatch(
      {
        batches: new DynamoImageRecords(capture, {
          retentionSeconds: config.limits.recordRetentionDays * 86_400,
        }),
        sharedFiles: {
          find: async () => new Map(),
          offer: async () => undefined,
          retain: async () => true,
          release: async () => undefined,
        },
        signer: {
          presignPut: async (request) => {
            requests.push(request);
            return { method: 'PUT', url: '', headers: {} };
          },
          presignGet: async () => '',
        },
        quotas: {
          hit: async () => ({ allowed: true }),
          reserveUploads: async () => ({ reserved: true }),
          releaseUploads: async () => {},
        },
        callbacks: { check: async () => {} },
        metrics: { filesRequested: () => {} },
        uploadBucket: config.uploadBucket,
        uploadPrefix: config.uploadPrefix,
        limits: config.limits,
      },
      owner,
      { files },
    );
    return { rows, requests };
  };

  const write = async (rows: readonly Row[]) => {
    const requests = chunk(
      rows.map((Item) => ({ PutRequest: { Item } })),
      ROWS_PER_REQUEST,
    );
    for (const wave of chunk(requests, REQUESTS_AT_ONCE)) {
      await Promise.all(
        wave.map(async (items) => {
          let left = items;
          // dynalite processes every item; resend whatever a server leaves unprocessed.
          while (left.length > 0) {
            const output = await dynamo.send(
              new BatchWriteCommand({ RequestItems: { [endpoints.tableName]: left } }),
            );
            left = (output.UnprocessedItems?.[endpoints.tableName] ?? []) as typeof items;
          }
        }),
      );
    }
  };

  return {
    async sample(owner, files) {
      const { rows, requests } = await prepare(owner, files);
      const started = performance.now();
      await write(rows);
      const written = performance.now();
      await Promise.all(requests.map((request) => signer.presignPut(request)));
      const signed = performance.now();
      return {
        writeMs: written - started,
        signMs: signed - written,
        totalMs: signed - started,
        rows: rows.length,
        urls: requests.length,
      };
    },
    close() {
      dynamo.destroy();
      s3.destroy();
    },
  };
}
