import { createPublicKey } from 'node:crypto';
import type { IConstruct } from 'constructs';
import * as z from 'zod';
import { DEFAULT_ACCEPTED_TYPES } from '../functions/shared/config.ts';
import { DEFAULT_VARIANTS, VariantSpecsSchema } from '../functions/shared/variants.ts';

/** The stage `cdk synth`/`cdk deploy` build when no `-c stage=<name>` is given. */
export const DEFAULT_STAGE = 'dev';
/** Stage names become part of the stack name (`PhotoIntake-<stage>`) and its resource names. */
const STAGE_NAME = /^[a-z][a-z0-9-]{0,19}$/;

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

/** A PEM public key CloudFront accepts for signed URLs: RSA, 2048 bits. */
const cloudFrontPublicKey = z.string().superRefine((pem, ctx) => {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'rsa' || key.asymmetricKeyDetails?.modulusLength !== 2048) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be an RSA 2048-bit public key (CloudFront accepts no other)',
      });
    }
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a PEM public key (-----BEGIN PUBLIC KEY-----...)' });
  }
});
const secretArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6}$/,
    'must be the complete ARN of a Secrets Manager secret (ending in -XXXXXX)',
  );

/**
 * Every deployment setting, read from the CDK context (`cdk.json` or `-c key=value`), with its
 * default. Bounds match what `functions/shared/config.ts` accepts, so a deployable stack never
 * hands its functions a configuration they refuse at cold start.
 */
const SettingsSchema = z
  .object({
    // A production stage refuses placeholder and open settings at synth (see `checkProductionSettings`).
    production: bool.default(false),
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
    // Lambda's CPU. arm64 is about 20% cheaper per GB-s; x86_64 exists so a stack built on an x86_64
    // machine can be started there (the function-start test does that).
    lambdaArchitecture: z.enum(['arm64', 'x86_64']).default('arm64'),
    // CloudFront in front of the variants bucket: the public half of the URL-signing key (PEM), and
    // the secret holding the private half. Both or neither; without them variant URLs are presigned
    // S3 GETs, which die with the API function's session credentials.
    cloudFrontPublicKey: cloudFrontPublicKey.optional(),
    cloudFrontPrivateKeySecretArn: secretArn.optional(),
    // Processed originals move to a cheaper storage class this many days after upload.
    originalsTransitionDays: int(1, 3650).default(30),
    originalsStorageClass: z.enum(['STANDARD_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR']).default('GLACIER_IR'),
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
  })
  .superRefine((settings, ctx) => {
    if (
      (settings.cloudFrontPublicKey === undefined) !==
      (settings.cloudFrontPrivateKeySecretArn === undefined)
    ) {
      const missing =
        settings.cloudFrontPublicKey === undefined ? 'cloudFrontPublicKey' : 'cloudFrontPrivateKeySecretArn';
      ctx.addIssue({
        code: 'custom',
        path: [missing],
        message:
          'cloudFrontPublicKey and cloudFrontPrivateKeySecretArn are set together (see docs/deploy.md)',
      });
    }
    // S3 refuses a lifecycle transition to STANDARD_IA earlier than 30 days after creation.
    if (settings.originalsStorageClass === 'STANDARD_IA' && settings.originalsTransitionDays < 30) {
      ctx.addIssue({
        code: 'custom',
        path: ['originalsTransitionDays'],
        message: 'must be at least 30 when originalsStorageClass is STANDARD_IA',
      });
    }
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

/** One stage: its name (the stack is `PhotoIntake-<stage>`) and its validated settings. */
export interface StageConfig {
  stage: string;
  settings: PipelineSettings;
  /** False when cdk.json has no `stages.<stage>` entry and every setting is a default. */
  declared: boolean;
}

/** The stack of a stage. */
export const stackNameFor = (stage: string) => `PhotoIntake-${stage}`;

/**
 * Reads the stage (`-c stage=<name>`, default `dev`) and its settings from the CDK context visible
 * at `scope` (usually the App). Settings live in cdk.json under `context.stages.<stage>`, so every
 * deploy of a stage uses the same ones. A setting given anywhere else (`-c jwtIssuer=...`, or at the
 * top level of the context) would silently revert on the next deploy without it, so it is refused.
 */
export function stageFromContext(scope: IConstruct): StageConfig {
  const stage: unknown = scope.node.tryGetContext('stage') ?? DEFAULT_STAGE;
  if (typeof stage !== 'string' || !STAGE_NAME.test(stage)) {
    throw new Error(
      `Invalid stage ${JSON.stringify(stage)}: a stage name is 1-20 lowercase letters, digits or dashes, ` +
        'starting with a letter (-c stage=prod).',
    );
  }
  const stray = SETTING_KEYS.filter((key) => scope.node.tryGetContext(key) !== undefined);
  if (stray.length > 0) {
    throw new Error(
      `Invalid image pipeline settings (CDK context): ${stray.join(', ')} given outside a stage ` +
        `(-c ${stray[0]}=... or cdk.json "context".${stray[0]}). Settings live in cdk.json under ` +
        `"context" -> "stages" -> "${stage}" -> "${stray[0]}", so that every deploy of the stage keeps them.`,
    );
  }
  const stages = fromJson(scope.node.tryGetContext('stages') ?? {});
  if (typeof stages !== 'object' || stages === null || Array.isArray(stages)) {
    throw new Error('Invalid CDK context "stages": an object of stage name -> settings (see cdk.json).');
  }
  const entry: unknown = (stages as Record<string, unknown>)[stage];
  if (entry !== undefined && (typeof entry !== 'object' || entry === null || Array.isArray(entry))) {
    throw new Error(`Invalid CDK context "stages"."${stage}": an object of settings.`);
  }
  const input = Object.fromEntries(
    Object.entries((entry ?? {}) as Record<string, unknown>).filter(([, value]) => value !== ''),
  );
  const unknown = Object.keys(input).filter((key) => !(SETTING_KEYS as string[]).includes(key));
  if (unknown.length > 0) {
    throw new Error(
      `Invalid image pipeline settings (CDK context): unknown setting ${unknown.join(', ')} in ` +
        `"stages"."${stage}" (known: ${SETTING_KEYS.join(', ')}).`,
    );
  }
  let settings: PipelineSettings;
  try {
    settings = parseSettings(input);
  } catch (error) {
    throw new Error(`Stage ${stage}: ${(error as Error).message}`);
  }
  return { stage, settings, declared: entry !== undefined };
}

/**
 * A production stage must not deploy with what only makes synth work: placeholder JWT settings,
 * browsers from any origin, or variant URLs that die with the function's credentials. Throws naming
 * every setting to set and where.
 */
export function checkProductionSettings(stage: string, settings: PipelineSettings): void {
  if (!settings.production) return;
  const where = (key: string) => `cdk.json "context" -> "stages" -> "${stage}" -> "${key}"`;
  const problems: string[] = [];
  if (settings.jwtIssuer === PLACEHOLDER_JWT_ISSUER) {
    problems.push(`✖ jwtIssuer is the placeholder ${PLACEHOLDER_JWT_ISSUER}: set ${where('jwtIssuer')}`);
  }
  if (settings.jwtAudience.includes(PLACEHOLDER_JWT_AUDIENCE)) {
    problems.push(
      `✖ jwtAudience is the placeholder ${PLACEHOLDER_JWT_AUDIENCE}: set ${where('jwtAudience')}`,
    );
  }
  if (settings.corsAllowedOrigins.includes('*')) {
    problems.push(
      `✖ corsAllowedOrigins allows any origin (*): list your web origins in ${where('corsAllowedOrigins')}`,
    );
  }
  if (settings.cloudFrontPublicKey === undefined) {
    problems.push(
      `✖ cloudFrontPublicKey and cloudFrontPrivateKeySecretArn are not set: variant URLs would be presigned ` +
        `with the API's session credentials and could die before their hour; set both in ${where('cloudFrontPublicKey')} ` +
        '(docs/deploy.md, "CloudFront signing key")',
    );
  }
  if (problems.length > 0) {
    throw new Error(
      `Stage ${stage} is a production stage and cannot be synthesized:\n${problems.join('\n')}`,
    );
  }
}

/** Whether the JWT settings are the synth-only placeholders. */
export const usesPlaceholderJwt = (settings: PipelineSettings) =>
  settings.jwtIssuer === PLACEHOLDER_JWT_ISSUER || settings.jwtAudience.includes(PLACEHOLDER_JWT_AUDIENCE);
