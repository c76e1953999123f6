import { Logger } from '@aws-lambda-powertools/logger';
import { z } from 'zod';
import { DynamoImageRecords } from '../shared/adapters/dynamo-image-records.ts';
import { S3ObjectStore } from '../shared/adapters/s3-object-store.ts';
import { SqsWorkQueue } from '../shared/adapters/sqs-work-queue.ts';
import { createClients } from '../shared/clients.ts';
import { ConfigError, getConfig } from '../shared/config.ts';
import { type ReconcileDeps, type ReconcileReport, reconcile } from '../shared/recovery/reconcile.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
if (!config.queueUrl || !config.dlqUrl) throw new ConfigError('The reconciler needs QUEUE_URL and DLQ_URL.');
const clients = createClients(config);
const deps: ReconcileDeps = {
  records: new DynamoImageRecords(clients.dynamo, {
    tableName: config.tableName,
    retentionSeconds: config.limits.recordRetentionDays * 86_400,
  }),
  objects: new S3ObjectStore(clients.s3),
  queue: new SqsWorkQueue(clients.sqs, { queueUrl: config.queueUrl, dlqUrl: config.dlqUrl }),
  uploadBucket: config.uploadBucket,
  uploadPrefix: config.uploadPrefix,
  logger: new Logger({ serviceName: 'photo-intake-reconciler' }),
};

/** A schedule may override the thresholds (the local stack does, when it starts). */
const InputSchema = z
  .object({
    stuckAfterSeconds: z.number().int().min(0).optional(),
    missedEventAfterSeconds: z.number().int().min(0).optional(),
  })
  .partial();

/** Runs on a schedule (EventBridge); the event's `detail`, if any, may carry threshold overrides. */
export const handler = async (event: { detail?: unknown } = {}): Promise<ReconcileReport> => {
  const input = InputSchema.parse(event.detail ?? {});
  const { recovery } = config;
  return reconcile(deps, {
    stuckAfterMs: (input.stuckAfterSeconds ?? recovery.stuckAfterSeconds) * 1000,
    missedEventAfterMs: (input.missedEventAfterSeconds ?? recovery.missedEventAfterSeconds) * 1000,
    maxAttempts: recovery.maxAttempts,
    maxDeadLetters: 500,
  });
};
