import * as z from 'zod';
import { DEFAULT_VARIANTS, type VariantSpec, VariantSpecsSchema } from './variants.ts';

/** Content types accepted by default at the upload edge (the contract's list). */
export const DEFAULT_ACCEPTED_TYPES = [
  'image/jpeg',
  'image/png',
  'image/webp',
  'image/avif',
  'image/gif',
  'image/tiff',
  'image/heic',
  'image/heif',
] as const;

const csv = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string().min(1)).min(1));

const optionalUrl = z.url().optional();

const flag = z
  .enum(['true', 'false'])
  .default('false')
  .transform((value) => value === 'true');

/**
 * Webhook retry delays, in seconds after each failed attempt: Standard Webhooks' suggested schedule
 * (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), so the last of the 8 attempts leaves 27 h 35 min after
 * the first. Each delay must fit one SQS visibility change (at most 12 h).
 */
export const DEFAULT_WEBHOOK_RETRY_DELAYS_SECONDS = [5, 300, 1800, 7200, 18_000, 36_000, 36_000] as const;

const retryDelays = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean)
      .map(Number),
  )
  .pipe(z.array(z.number().int().min(0).max(43_200)).min(1).max(50));

/**
 * Every setting the functions and the local stack read, with its default. This module is the only
 * place that reads `process.env`; everything else receives a validated `Config`.
 */
const EnvSchema = z.object({
  AWS_REGION: z.string().min(1).default('us-east-1'),
  TABLE_NAME: z.string().min(1),
  UPLOAD_BUCKET: z.string().min(1),
  VARIANTS_BUCKET: z.string().min(1),
  UPLOAD_PREFIX: z
    .string()
    .regex(/^[a-z0-9-]+\/$/, 'must be lowercase letters, digits or dashes, ending in "/"')
    .default('uploads/'),
  QUEUE_URL: optionalUrl,
  DLQ_URL: optionalUrl,
  MAX_FILES_PER_BATCH: z.coerce.number().int().min(1).max(1000).default(500),
  MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(5 * 1024 ** 3)
    .default(50 * 1024 * 1024),
  ACCEPTED_TYPES: csv.default([...DEFAULT_ACCEPTED_TYPES]),
  UPLOAD_URL_TTL_SECONDS: z.coerce.number().int().min(1).max(604_800).default(900),
  /** Per owner: upload URLs issued and not yet used or expired, across batches. */
  MAX_OPEN_UPLOADS: z.coerce.number().int().min(1).default(5000),
  /** Per owner: API requests per minute (every authenticated route). */
  REQUESTS_PER_MINUTE: z.coerce.number().int().min(1).default(1200),
  /** Pending records are kept this long after their URL expired, then TTL removes them. */
  RECORD_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  VARIANTS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'VARIANTS must be JSON' });
        return z.NEVER;
      }
    })
    .pipe(VariantSpecsSchema.optional()),
  MAX_INPUT_PIXELS: z.coerce.number().int().min(1).default(100_000_000),
  MAX_FRAMES: z.coerce.number().int().min(1).default(200),
  PROCESSING_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  /** Reconciler: `uploaded`/`processing` images untouched this long are queued again. */
  RECONCILE_STUCK_AFTER_SECONDS: z.coerce.number().int().min(0).default(900),
  /** Reconciler: an object stored this long while its record is still `pending` lost its event. */
  RECONCILE_MISSED_EVENT_AFTER_SECONDS: z.coerce.number().int().min(0).default(600),
  /** Reconciler: processing attempts after which an image fails for good. */
  MAX_ATTEMPTS: z.coerce.number().int().min(1).default(10),
  /** The work queue's maxReceiveCount: on the last receive a transient failure becomes final. */
  MAX_RECEIVE_COUNT: z.coerce.number().int().min(1).max(1000).default(5),
  /**
   * CloudFront in front of the variants bucket (deployed): its base URL, the id of the public key
   * that verifies variant URLs, and the secret holding the private key. All three or none; without
   * them variant URLs are presigned S3 GETs (the local stack).
   */
  VARIANTS_CDN_URL: z.url({ protocol: /^https$/ }).optional(),
  CLOUDFRONT_KEY_PAIR_ID: z.string().min(1).optional(),
  CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: z.string().min(1).optional(),
  /** Webhooks: `true` also allows `http` and private, loopback or link-local targets (the local stack). */
  CALLBACK_ALLOW_PRIVATE: flag,
  /** Webhooks: the queue the notifier reads (unset: batches' webhooks are not sent). */
  WEBHOOK_QUEUE_URL: optionalUrl,
  /** Webhooks: the signing secret itself (`whsec_...`; the local stack) ... */
  WEBHOOK_SECRET: z.string().min(1).optional(),
  /** ... or the Secrets Manager secret that holds it (deployed). */
  WEBHOOK_SECRET_ARN: z.string().min(1).optional(),
  /** Webhooks: how long one attempt may take, connection to the end of the answer. */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** Webhooks: seconds to wait after each failed attempt (comma-separated); attempts = delays + 1. */
  WEBHOOK_RETRY_DELAYS_SECONDS: retryDelays.default([...DEFAULT_WEBHOOK_RETRY_DELAYS_SECONDS]),
  /** EventBridge: the bus that receives `Image Ready`, `Image Failed` and `Batch Completed`. */
  EVENT_BUS_NAME: z.string().min(1).optional(),
  /** Endpoints of S3-, DynamoDB- and SQS-compatible servers (the local stack); unset on AWS. */
  S3_ENDPOINT: optionalUrl,
  DYNAMODB_ENDPOINT: optionalUrl,
  SQS_ENDPOINT: optionalUrl,
});

export type Env = z.input<typeof EnvSchema>;

export class ConfigError extends Error {
  readonly code = 'ConfigError';
  override readonly name = 'ConfigError';
}

/** Validated configuration, shaped for the code that uses it. */
export interface Config {
  region: string;
  tableName: string;
  uploadBucket: string;
  variantsBucket: string;
  uploadPrefix: string;
  queueUrl: string | undefined;
  dlqUrl: string | undefined;
  recovery: { stuckAfterSeconds: number; missedEventAfterSeconds: number; maxAttempts: number };
  limits: {
    maxFilesPerBatch: number;
    maxBytes: number;
    acceptedTypes: readonly string[];
    uploadUrlTtlSeconds: number;
    recordRetentionDays: number;
    maxOpenUploads: number;
    requestsPerMinute: number;
  };
  processing: {
    /** The configured variant set, or the default one. */
    variants: readonly VariantSpec[];
    maxInputPixels: number;
    maxFrames: number;
    timeoutMs: number;
    maxReceiveCount: number;
  };
  endpoints: { s3: string | undefined; dynamodb: string | undefined; sqs: string | undefined };
  /** Set when CloudFront serves and signs variant URLs. */
  cdn: { url: string; keyPairId: string; privateKeySecretArn: string } | undefined;
  push: {
    allowPrivateCallbacks: boolean;
    webhookQueueUrl: string | undefined;
    webhookSecret: string | undefined;
    webhookSecretArn: string | undefined;
    webhookTimeoutMs: number;
    retryDelaysSeconds: readonly number[];
    eventBusName: string | undefined;
  };
}

/** Parses and validates an environment; throws a `ConfigError` that names every bad setting. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const result = EnvSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(`Invalid configuration:\n${z.prettifyError(result.error)}`);
  }
  const e = result.data;
  const cdn = {
    VARIANTS_CDN_URL: e.VARIANTS_CDN_URL?.replace(/\/+$/, ''),
    CLOUDFRONT_KEY_PAIR_ID: e.CLOUDFRONT_KEY_PAIR_ID,
    CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: e.CLOUDFRONT_PRIVATE_KEY_SECRET_ARN,
  };
  const missing = Object.entries(cdn).filter(([, value]) => value === undefined);
  if (missing.length > 0 && missing.length < 3) {
    throw new ConfigError(
      `Invalid configuration:\n✖ ${missing.map(([name]) => name).join(', ')} must be set with the other CloudFront settings`,
    );
  }
  return {
    region: e.AWS_REGION,
    tableName: e.TABLE_NAME,
    uploadBucket: e.UPLOAD_BUCKET,
    variantsBucket: e.VARIANTS_BUCKET,
    uploadPrefix: e.UPLOAD_PREFIX,
    queueUrl: e.QUEUE_URL,
    dlqUrl: e.DLQ_URL,
    recovery: {
      stuckAfterSeconds: e.RECONCILE_STUCK_AFTER_SECONDS,
      missedEventAfterSeconds: e.RECONCILE_MISSED_EVENT_AFTER_SECONDS,
      maxAttempts: e.MAX_ATTEMPTS,
    },
    limits: {
      maxFilesPerBatch: e.MAX_FILES_PER_BATCH,
      maxBytes: e.MAX_BYTES,
      acceptedTypes: e.ACCEPTED_TYPES,
      uploadUrlTtlSeconds: e.UPLOAD_URL_TTL_SECONDS,
      recordRetentionDays: e.RECORD_RETENTION_DAYS,
      maxOpenUploads: e.MAX_OPEN_UPLOADS,
      requestsPerMinute: e.REQUESTS_PER_MINUTE,
    },
    processing: {
      variants: e.VARIANTS ?? DEFAULT_VARIANTS,
      maxInputPixels: e.MAX_INPUT_PIXELS,
      maxFrames: e.MAX_FRAMES,
      timeoutMs: e.PROCESSING_TIMEOUT_MS,
      maxReceiveCount: e.MAX_RECEIVE_COUNT,
    },
    endpoints: { s3: e.S3_ENDPOINT, dynamodb: e.DYNAMODB_ENDPOINT, sqs: e.SQS_ENDPOINT },
    cdn:
      cdn.VARIANTS_CDN_URL && cdn.CLOUDFRONT_KEY_PAIR_ID && cdn.CLOUDFRONT_PRIVATE_KEY_SECRET_ARN
        ? {
            url: cdn.VARIANTS_CDN_URL,
            keyPairId: cdn.CLOUDFRONT_KEY_PAIR_ID,
            privateKeySecretArn: cdn.CLOUDFRONT_PRIVATE_KEY_SECRET_ARN,
          }
        : undefined,
    push: {
      allowPrivateCallbacks: e.CALLBACK_ALLOW_PRIVATE,
      webhookQueueUrl: e.WEBHOOK_QUEUE_URL,
      webhookSecret: e.WEBHOOK_SECRET,
      webhookSecretArn: e.WEBHOOK_SECRET_ARN,
      webhookTimeoutMs: e.WEBHOOK_TIMEOUT_MS,
      retryDelaysSeconds: e.WEBHOOK_RETRY_DELAYS_SECONDS,
      eventBusName: e.EVENT_BUS_NAME,
    },
  };
}

let cached: Config | undefined;

/** The process's configuration, read from `process.env` once, on first use. */
export function getConfig(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}
