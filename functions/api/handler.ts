import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoImageRecords } from '../shared/adapters/dynamo-image-records.ts';
import { DynamoQuotas } from '../shared/adapters/dynamo-quotas.ts';
import { S3ObjectStore } from '../shared/adapters/s3-object-store.ts';
import { S3UrlSigner } from '../shared/adapters/s3-url-signer.ts';
import { createClients } from '../shared/clients.ts';
import { getConfig } from '../shared/config.ts';
import { type ApiDeps, type ApiEvent, handleApiRequest } from '../shared/http/api.ts';
import { variantFileNames, variantSpecs } from '../shared/processing/variant-keys.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
const clients = createClients(config);
const logger = new Logger({ serviceName: 'photo-intake-api' });
const records = new DynamoImageRecords(clients.dynamo, {
  tableName: config.tableName,
  retentionSeconds: config.limits.recordRetentionDays * 86_400,
});
const signer = new S3UrlSigner(clients.s3);
const quotas = new DynamoQuotas(clients.dynamo, { tableName: config.tableName });
const deps: ApiDeps = {
  uploads: {
    records,
    signer,
    quotas,
    uploadBucket: config.uploadBucket,
    uploadPrefix: config.uploadPrefix,
    limits: config.limits,
  },
  status: {
    records,
    signer,
    objects: new S3ObjectStore(clients.s3),
    uploadBucket: config.uploadBucket,
    variantsBucket: config.variantsBucket,
    variantFileNames: variantFileNames(variantSpecs(config)),
  },
  quotas,
  requestsPerMinute: config.limits.requestsPerMinute,
  logger,
};

export const handler = (event: ApiEvent) => handleApiRequest(deps, event);
