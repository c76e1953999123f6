import type { IConstruct } from 'constructs';
import { z } from 'zod';
import { DEFAULT_ACCEPTED_TYPES } from '../functions/shared/config.ts';
import { DEFAULT_VARIANTS, VariantSpecsSchema } from '../functions/shared/variants.ts';

/** Used when `jwtIssuer` is not in the context, so that `cdk synth` works; never deploy with it. */
export const PLACEHOLDER_JWT_ISSUER = 'https://example.invalid/';
/** Used when `jwtAudience` is not in the context; never deploy with it. */
export const PLACEHOLDER_JWT_AUDIENCE = 'placeholder-audience.invalid';

// Context values come typed from cdk.json or `new App({ context })`, but always as strings from
// `cdk synth -c key=value`; these accept both.
const fromJson = (value: unknown) => {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
};
const list = z.preprocess(
  (value) =>
    typeof value === 'string' && !value.trim().startsWith('[')
      ? value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : fromJson(value),
  z.array(z.string().min(1)).min(1),
);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.preprocess(
  (value) => (value === 'true' ? true : value === 'false' ? false : value),
  z.boolean(),
);
const json = <T extends z.ZodType>(schema: T) => z.preprocess(fromJson, schema);

/**
 * Every deployment setting, read from the CDK context (`cdk.json` or `-c key=value`), with its
 * default. Bounds match what `functions/shared/config.ts` accepts, so a deployable stack never
 * hands its functions a configuration they refuse at cold start.
 */
const SettingsSchema = z.object({
  jwtIssuer: z.url({ protocol: /^https$/ }).default(PLACEHOLDER_JWT_ISSUER),
  jwtAudience: list.default([PLACEHOLDER_JWT_AUDIENCE]),
  corsAllowedOrigins: list.default(['*']),
  maxFilesPerBatch: int(1, 1000).default(500),
  maxBytes: int(1, 5 * 1024 ** 3).default(50 * 1024 * 1024),
  // A presigned URL also dies with the API function's session credentials, so long TTLs buy little.
  uploadUrlTtlSeconds: int(60, 43_200).default(900),
  acceptedTypes: list.pipe(z.array(z.enum(DEFAULT_ACCEPTED_TYPES))).default([...DEFAULT_ACCEPTED_TYPES]),
  variants: json(VariantSpecsSchema).default(() => VariantSpecsSchema.parse(DEFAULT_VARIANTS)),
  maxOpenUploads: int(1, 1_000_000).default(5000),
  requestsPerMinute: int(1, 1_000_000).default(1200),
  maxInputPixels: int(1, 1_000_000_000).default(100_000_000),
  maxFrames: int(1, 10_000).default(200),
  recordRetentionDays: int(1, 3650).default(30),
  // The event source mapping's MaximumConcurrency accepts 2 to 1000.
  optimizerMaxConcurrency: int(2, 1000).default(20),
  apiThrottle: json(
    z.object({
      rateLimit: z.number().positive().max(10_000),
      burstLimit: z.number().int().min(1).max(5000),
    }),
  ).default({ rateLimit: 100, burstLimit: 200 }),
  alarmEmail: z.email().optional(),
  tableDeletionProtection: bool.default(true),
  // The reconciler (RECONCILE_STUCK_AFTER_SECONDS): `uploaded`/`processing` images untouched this
  // long are queued again. It must exceed the work queue's visibility timeout, or a message still
  // held by an optimizer invocation would be queued twice (see `checkReconcileSettings`).
  reconcileStuckAfterSeconds: int(60, 86_400).default(900),
  // RECONCILE_MISSED_EVENT_AFTER_SECONDS: a stored upload whose record is still `pending` this long
  // lost its S3 event.
  reconcileMissedEventAfterSeconds: int(60, 86_400).default(600),
  // MAX_ATTEMPTS: processing attempts after which the reconciler fails an image for good.
  maxProcessingAttempts: int(1, 100).default(10),
  // Minutes between two reconciler runs (an EventBridge rate schedule).
  reconcileSchedule: int(1, 1440).default(5),
});

export type PipelineSettings = z.output<typeof SettingsSchema>;

/** The context keys this app reads, in documentation order. */
export const SETTING_KEYS = Object.keys(SettingsSchema.shape) as (keyof PipelineSettings)[];

/** Validates settings given in code (tests) or gathered from the context; throws naming every bad key. */
export function parseSettings(input: Record<string, unknown>): PipelineSettings {
  const result = SettingsSchema.safeParse(input);
  if (!result.success) {
    throw new Error(`Invalid image pipeline settings (CDK context):\n${z.prettifyError(result.error)}`);
  }
  return result.data;
}

/**
 * The checks that need the built stack: the reconciler must not requeue an image whose message an
 * optimizer invocation may still hold, so its stuck threshold has to exceed the work queue's
 * visibility timeout. Throws like `parseSettings`, naming the setting.
 */
export function checkReconcileSettings(
  settings: Pick<PipelineSettings, 'reconcileStuckAfterSeconds'>,
  workQueueVisibilityTimeoutSeconds: number,
): void {
  if (settings.reconcileStuckAfterSeconds <= workQueueVisibilityTimeoutSeconds) {
    throw new Error(
      'Invalid image pipeline settings (CDK context):\n' +
        `✖ reconcileStuckAfterSeconds (${settings.reconcileStuckAfterSeconds}) must be above the work ` +
        `queue's visibility timeout (${workQueueVisibilityTimeoutSeconds} s)\n  → at reconcileStuckAfterSeconds`,
    );
  }
}

/** Reads and validates every setting from the CDK context visible at `scope` (usually the App). */
export function settingsFromContext(scope: IConstruct): PipelineSettings {
  const input: Record<string, unknown> = {};
  for (const key of SETTING_KEYS) {
    const value: unknown = scope.node.tryGetContext(key);
    if (value !== undefined && value !== '') input[key] = value;
  }
  return parseSettings(input);
}

/** Whether the JWT settings are the synth-only placeholders. */
export const usesPlaceholderJwt = (settings: PipelineSettings) =>
  settings.jwtIssuer === PLACEHOLDER_JWT_ISSUER || settings.jwtAudience.includes(PLACEHOLDER_JWT_AUDIENCE);
