import { availableParallelism } from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/**
 * The local stack's own settings (the handlers read theirs through functions/shared/config.ts).
 * The one place the local runner reads its environment.
 */
const LocalEnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
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
});

export interface LocalSettings {
  port: number;
  dataDir: string;
  optimizerConcurrency: number;
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  processingTimeoutMs: number;
  logLevel: string;
  reconcileIntervalMs: number;
}

export function readLocalSettings(env: Record<string, string | undefined> = process.env): LocalSettings {
  const result = LocalEnvSchema.safeParse(env);
  if (!result.success) throw new Error(`Invalid local stack settings:\n${z.prettifyError(result.error)}`);
  const e = result.data;
  return {
    port: e.PORT,
    dataDir: path.resolve(e.DATA_DIR),
    optimizerConcurrency: e.OPTIMIZER_CONCURRENCY,
    visibilityTimeoutSeconds: e.QUEUE_VISIBILITY_TIMEOUT_SECONDS,
    maxReceiveCount: e.MAX_RECEIVE_COUNT,
    processingTimeoutMs: e.PROCESSING_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
    reconcileIntervalMs: e.RECONCILE_INTERVAL_SECONDS * 1000,
  };
}
