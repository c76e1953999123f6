import * as z from 'zod';
import { createAdapters } from '../shared/adapters.ts';
import { ConfigError, getConfig } from '../shared/config.ts';
import { observability } from '../shared/observability.ts';
import { createSqsClient } from '../shared/sqs-client.ts';
import { type ReconcileDeps, type ReconcileReport, reconcile, reconcileOptionsFrom } from './reconcile.ts';
import { SqsWorkQueue } from './sqs-work-queue.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
if (!config.queueUrl || !config.dlqUrl) throw new ConfigError('The reconciler needs QUEUE_URL and DLQ_URL.');
const { records, moves, objects, quotas } = createAdapters(config);
const { logger, instrument } = observability('reconciler');
const deps: ReconcileDeps = {
  records,
  moves,
  objects,
  queue: new SqsWorkQueue(createSqsClient(config), { queueUrl: config.queueUrl, dlqUrl: config.dlqUrl }),
  quotas,
  uploadBucket: config.uploadBucket,
  uploadPrefix: config.uploadPrefix,
  logger,
};

/** A schedule may override the thresholds (the local stack does, when it starts). */
const InputSchema = z
  .object({
    stuckAfterSeconds: z.number().int().min(0).optional(),
    missedEventAfterSeconds: z.number().int().min(0).optional(),
  })
  .partial();

/** Runs on a schedule (EventBridge); the event's `detail`, if any, may carry threshold overrides. */
export const handler = instrument(async (event: { detail?: unknown } = {}): Promise<ReconcileReport> => {
  const input = InputSchema.parse(event.detail ?? {});
  return reconcile(deps, reconcileOptionsFrom(config.recovery, input));
});
