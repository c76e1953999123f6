import { createDocumentClient, createS3Client } from './clients.ts';
import type { Config } from './config.ts';
import { DynamoStatusMoves } from './fate/moves.ts';
import { DynamoImageRecords } from './records/image-records.ts';
import { DynamoQuotas } from './records/quotas.ts';
import { DynamoSharedFiles } from './records/shared-files.ts';
import { RecordsTable } from './records/table.ts';
import { S3ObjectStore } from './storage/s3-object-store.ts';
import { S3UrlSigner } from './storage/s3-url-signer.ts';

/**
 * The SDK clients and the adapters over them, for one process. Building them does no I/O, so each
 * handler builds the set once at module scope and uses what it needs. `now` is the one clock of the
 * set (records, quotas, URL signing, and the use cases the handlers build over them); tests inject it.
 */
export function createAdapters(config: Config, options: { now?: () => Date } = {}) {
  const now = options.now ?? (() => new Date());
  const s3 = createS3Client(config);
  const table = createTable(config, { now });
  const retentionSeconds = config.limits.recordRetentionDays * 86_400;
  return {
    now,
    table,
    records: new DynamoImageRecords(table, { retentionSeconds }),
    moves: new DynamoStatusMoves(table, { retentionSeconds }),
    sharedFiles: new DynamoSharedFiles(table),
    quotas: new DynamoQuotas(table),
    objects: new S3ObjectStore(s3),
    /** Presigned S3 URLs (the API signs variant GETs through CloudFront where there is one: api/url-signer.ts). */
    signer: new S3UrlSigner(s3, { now }),
  };
}

/** The records table alone, for a function that touches nothing else (the relay): no S3 client in its bundle. */
export function createTable(config: Config, options: { now?: () => Date } = {}): RecordsTable {
  return new RecordsTable(createDocumentClient(config), {
    tableName: config.tableName,
    ...(options.now ? { now: options.now } : {}),
  });
}
