import { availableParallelism } from 'node:os';
import path from 'node:path';
import * as z from 'zod';

/**
 * The local stack's own settings (the handlers read theirs through functions/shared/config.ts).
 * The one place the local runner reads its environment.
 */
const port = z.coerce.number().int().min(0).max(65_535);

const LocalEnvSchema = z.object({
  PORT: port.default(3000),
  /** The local storage endpoint's port: `PORT + 1` by default (a free one when `PORT` is 0). */
  S3_PORT: port.optional(),
  /**
   * Origins whose pages may call the API and the storage endpoint (CORS), comma-separated, or `*`
   * for any. Any by default: the servers listen on loopback only.
   */
  CORS_ALLOWED_ORIGINS: z
    .string()
    .default('*')
    .transform((s) =>
      s
        .split(',')
        .map((origin) => origin.trim())
        .filter(Boolean),
    )
    .pipe(
      z
        .array(
          z.union([
            z.literal('*'),
            z.url().refine((origin) => new URL(origin).origin === origin, {
              message: 'an origin is scheme://host[:port], with no path or trailing slash',
            }),
          ]),
        )
        .min(1),
    ),
  DATA_DIR: z.string().min(1).default('.data'),
  /** Optimizer invocations at once; each works on one image at a time. */
  OPTIMIZER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(availableParallelism()),
  /** How long a received message stays hidden; a crashed invocation's work is retried after it. */
  QUEUE_VISIBILITY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(43_200).default(60),
  MAX_RECEIVE_COUNT: z.coerce.number().int().min(1).max(1000).default(5),
  PROCESSING_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  /** How often the reconciler runs (the deployed stack runs it every few minutes). */
  RECONCILE_INTERVAL_SECONDS: z.coerce.number().min(1).default(30),
  LOG_LEVEL: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT']).default('WARN'),
  /** Webhooks' signing secret (`whsec_<base64>`); by default one is made once and kept in DATA_DIR. */
  WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'must be whsec_ followed by base64')
    .optional(),
  /**
   * Seconds to wait after each failed webhook attempt. Locally the first two retries leave within
   * a minute (5 s, then 15 s); tests shorten it further.
   */
  WEBHOOK_RETRY_DELAYS_SECONDS: z
    .string()
    .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, 'must be comma-separated whole seconds')
    .default('5,15,60,300,1800,7200,18000,36000'),
  /** How long one webhook attempt may take. */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** Whether webhooks may go to `http` and private or loopback addresses (true: receivers on this machine). */
  CALLBACK_ALLOW_PRIVATE: z.enum(['true', 'false']).default('true'),
});

export interface LocalSettings {
  port: number;
  /** The storage endpoint's port; 0 picks a free one. */
  s3Port: number;
  corsAllowedOrigins: readonly string[];
  dataDir: string;
  optimizerConcurrency: number;
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  processingTimeoutMs: number;
  logLevel: string;
  reconcileIntervalMs: number;
  webhooks: {
    secret: string | undefined;
    retryDelaysSeconds: number[];
    timeoutMs: number;
    allowPrivate: boolean;
  };
}

export function readLocalSettings(env: Record<string, string | undefined> = process.env): LocalSettings {
  const result = LocalEnvSchema.safeParse(env);
  if (!result.success) throw new Error(`Invalid local stack settings:\n${z.prettifyError(result.error)}`);
  const e = result.data;
  const s3Port = e.S3_PORT ?? (e.PORT === 0 ? 0 : e.PORT + 1);
  if (s3Port > 65_535) throw new Error(`Invalid local stack settings: PORT + 1 is no port; set S3_PORT.`);
  if (s3Port !== 0 && s3Port === e.PORT) {
    throw new Error(`Invalid local stack settings: S3_PORT must differ from PORT (both ${s3Port}).`);
  }
  return {
    port: e.PORT,
    s3Port,
    corsAllowedOrigins: e.CORS_ALLOWED_ORIGINS,
    dataDir: path.resolve(e.DATA_DIR),
    optimizerConcurrency: e.OPTIMIZER_CONCURRENCY,
    visibilityTimeoutSeconds: e.QUEUE_VISIBILITY_TIMEOUT_SECONDS,
    maxReceiveCount: e.MAX_RECEIVE_COUNT,
    processingTimeoutMs: e.PROCESSING_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
    reconcileIntervalMs: e.RECONCILE_INTERVAL_SECONDS * 1000,
    webhooks: {
      secret: e.WEBHOOK_SECRET,
      retryDelaysSeconds: e.WEBHOOK_RETRY_DELAYS_SECONDS.split(',').map((t) => Number(t.trim())),
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      allowPrivate: e.CALLBACK_ALLOW_PRIVATE === 'true',
    },
  };
}
