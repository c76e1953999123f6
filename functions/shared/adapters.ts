import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createClients } from './clients.ts';
import type { Config } from './config.ts';
import { DynamoStatusMoves } from './fate/moves.ts';
import { DynamoImageRecords } from './records/image-records.ts';
import { DynamoQuotas } from './records/quotas.ts';
import { DynamoSharedFiles } from './records/shared-files.ts';
import { RecordsTable } from './records/table.ts';
import { CloudFrontUrlSigner, privateKeyFromSecret } from './storage/cloudfront-url-signer.ts';
import type { UrlSigner } from './storage/ports.ts';
import { S3ObjectStore } from './storage/s3-object-store.ts';
import { S3UrlSigner } from './storage/s3-url-signer.ts';

/**
 * The SDK clients and the adapters over them, for one process. Building them does no I/O, so each
 * handler builds the set once at module scope and uses what it needs. `now` is the one clock of the
 * set (records, quotas, URL signing, and the use cases the handlers build over them); tests inject it.
 */
export function createAdapters(config: Config, options: { now?: () => Date } = {}) {
  const now = options.now ?? (() => new Date());
  const clients = createClients(config);
  const table = new RecordsTable(clients.dynamo, { tableName: config.tableName, now });
  const retentionSeconds = config.limits.recordRetentionDays * 86_400;
  return {
    now,
    clients,
    table,
    records: new DynamoImageRecords(table, { retentionSeconds }),
    moves: new DynamoStatusMoves(table, { retentionSeconds }),
    sharedFiles: new DynamoSharedFiles(table),
    quotas: new DynamoQuotas(table),
    objects: new S3ObjectStore(clients.s3),
    signer: urlSigner(config, new S3UrlSigner(clients.s3, { now })),
  };
}

/**
 * Uploads are always presigned S3 PUTs. Variant GETs are signed by CloudFront when the deployment
 * has a distribution (a URL then lives exactly as long as promised), and presigned S3 GETs otherwise.
 */
function urlSigner(config: Config, s3: S3UrlSigner): UrlSigner {
  if (!config.cdn) return s3;
  const cloudFront = new CloudFrontUrlSigner({
    distributionUrl: config.cdn.url,
    bucket: config.variantsBucket,
    keyPairId: config.cdn.keyPairId,
    loadPrivateKey: privateKeyFromSecret(
      new SecretsManagerClient({ region: config.region }),
      config.cdn.privateKeySecretArn,
    ),
  });
  return {
    presignPut: (request) => s3.presignPut(request),
    presignGet: (bucket, key, minValiditySeconds) => cloudFront.presignGet(bucket, key, minValiditySeconds),
  };
}
