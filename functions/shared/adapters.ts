import { createClients } from './clients.ts';
import type { Config } from './config.ts';
import { DynamoImageRecords } from './records/image-records.ts';
import { DynamoQuotas } from './records/quotas.ts';
import { S3ObjectStore } from './storage/s3-object-store.ts';
import { S3UrlSigner } from './storage/s3-url-signer.ts';

/**
 * The SDK clients and the adapters over them, for one process. Building them does no I/O, so each
 * handler builds the set once at module scope and uses what it needs.
 */
export function createAdapters(config: Config) {
  const clients = createClients(config);
  return {
    clients,
    records: new DynamoImageRecords(clients.dynamo, {
      tableName: config.tableName,
      retentionSeconds: config.limits.recordRetentionDays * 86_400,
    }),
    quotas: new DynamoQuotas(clients.dynamo, { tableName: config.tableName }),
    objects: new S3ObjectStore(clients.s3),
    signer: new S3UrlSigner(clients.s3),
  };
}
