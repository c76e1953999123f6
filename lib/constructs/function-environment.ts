import type { Env } from '../../functions/shared/config.ts';
import type { PipelineSettings } from '../settings.ts';

/** Where uploads land; the notification filter and the upload lifecycle rule use the same prefix. */
export const UPLOAD_PREFIX = 'uploads/';

/** Variables the functions read through `functions/shared/config.ts`, plus the runtime's own. */
export type FunctionEnvironment = { [K in keyof Env]?: string } & {
  POWERTOOLS_SERVICE_NAME: string;
  POWERTOOLS_LOG_LEVEL: string;
  /** glibc otherwise gives every sharp (libvips) thread its own malloc arena and memory balloons. */
  MALLOC_ARENA_MAX?: string;
};

export interface SharedResources {
  tableName: string;
  uploadBucket: string;
  variantsBucket: string;
}

/** What every function needs: its log identity, and where the records and objects are. */
function baseEnvironment(resources: SharedResources, service: string): FunctionEnvironment {
  return {
    POWERTOOLS_SERVICE_NAME: service,
    POWERTOOLS_LOG_LEVEL: 'INFO',
    TABLE_NAME: resources.tableName,
    UPLOAD_BUCKET: resources.uploadBucket,
    VARIANTS_BUCKET: resources.variantsBucket,
    UPLOAD_PREFIX,
  };
}

/**
 * The configuration both functions share, as environment variables. Both get every limit so that
 * the API (which signs uploads and lists variants) and the optimizer (which enforces them) agree.
 */
export function sharedEnvironment(
  settings: PipelineSettings,
  resources: SharedResources,
  service: string,
): FunctionEnvironment {
  return {
    ...baseEnvironment(resources, service),
    MAX_FILES_PER_BATCH: String(settings.maxFilesPerBatch),
    MAX_BYTES: String(settings.maxBytes),
    ACCEPTED_TYPES: settings.acceptedTypes.join(','),
    UPLOAD_URL_TTL_SECONDS: String(settings.uploadUrlTtlSeconds),
    MAX_OPEN_UPLOADS: String(settings.maxOpenUploads),
    REQUESTS_PER_MINUTE: String(settings.requestsPerMinute),
    RECORD_RETENTION_DAYS: String(settings.recordRetentionDays),
    VARIANTS: JSON.stringify(settings.variants),
    MAX_INPUT_PIXELS: String(settings.maxInputPixels),
    MAX_FRAMES: String(settings.maxFrames),
  };
}

export interface ReconcilerResources extends SharedResources {
  queueUrl: string;
  dlqUrl: string;
}

/**
 * The reconciler's variables: where the records, uploads and both queues are, and its thresholds.
 * It is the only function that gets `DLQ_URL` (it reads dead letters to fail their images).
 */
export function reconcilerEnvironment(
  settings: PipelineSettings,
  resources: ReconcilerResources,
  service: string,
): FunctionEnvironment {
  return {
    ...baseEnvironment(resources, service),
    QUEUE_URL: resources.queueUrl,
    DLQ_URL: resources.dlqUrl,
    RECONCILE_STUCK_AFTER_SECONDS: String(settings.reconcileStuckAfterSeconds),
    RECONCILE_MISSED_EVENT_AFTER_SECONDS: String(settings.reconcileMissedEventAfterSeconds),
    MAX_ATTEMPTS: String(settings.maxProcessingAttempts),
    RECORD_RETENTION_DAYS: String(settings.recordRetentionDays),
  };
}

/** The relay and the notifier: where the records are (the configuration requires it), nothing else shared. */
export function pushEnvironment(resources: SharedResources, service: string): FunctionEnvironment {
  return baseEnvironment(resources, service);
}

/** Drops unset variables: Lambda's environment is a plain string map. */
export function toLambdaEnvironment(env: FunctionEnvironment): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
  );
}
