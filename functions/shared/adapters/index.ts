import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createClients } from '../clients.ts';
import type { Config } from '../config.ts';
import type { UrlSigner } from '../ports.ts';
import { CloudFrontUrlSigner, privateKeyFromSecret } from '../storage/cloudfront-url-signer.ts';
import { DynamoImageRecords } from './dynamo-image-records.ts';
import { DynamoQuotas } from './dynamo-quotas.ts';
import { S3ObjectStore } from './s3-object-store.ts';
import { S3UrlSigner } from './s3-url-signer.ts';

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
    signer: urlSigner(config, new S3UrlSigner(clients.s3)),
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
