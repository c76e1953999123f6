import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSEvent } from 'aws-lambda';
import { DynamoImageRecords } from '../shared/adapters/dynamo-image-records.ts';
import { S3ObjectStore } from '../shared/adapters/s3-object-store.ts';
import { createClients } from '../shared/clients.ts';
import { getConfig } from '../shared/config.ts';
import { processMessages, type QueueDeps } from '../shared/processing/process-messages.ts';
import { variantSpecs } from '../shared/processing/variant-keys.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
const clients = createClients(config);
const deps: QueueDeps = {
  records: new DynamoImageRecords(clients.dynamo, {
    tableName: config.tableName,
    retentionSeconds: config.limits.recordRetentionDays * 86_400,
  }),
  objects: new S3ObjectStore(clients.s3),
  uploadPrefix: config.uploadPrefix,
  variantsBucket: config.variantsBucket,
  specs: variantSpecs(config),
  limits: config.processing,
  maxBytes: config.limits.maxBytes,
  maxReceiveCount: config.processing.maxReceiveCount,
  logger: new Logger({ serviceName: 'photo-intake-optimizer' }),
};

export const handler = (event: SQSEvent, context: Context) => processMessages(deps, event, context);
