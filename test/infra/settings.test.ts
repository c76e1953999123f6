import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CfnElement } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ACCEPTED_TYPES } from '../../functions/shared/config.ts';
import { DEFAULT_VARIANTS } from '../../functions/shared/variants.ts';
import type { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import {
  checkProductionSettings,
  checkReconcileSettings,
  DEFAULT_STAGE,
  PLACEHOLDER_JWT_AUDIENCE,
  PLACEHOLDER_JWT_ISSUER,
  parseSettings,
  stageFromContext,
  usesPlaceholderJwt,
} from '../../lib/settings.ts';
import { stageStack, testApp } from './cdk-app.ts';

const KEY_PAIR = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PUBLIC_KEY = KEY_PAIR.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:photo-intake/prod/cloudfront-AbC123';

describe('settings', () => {
  it('defaults to the contract limits and to placeholder JWT settings', () => {
    const settings = parseSettings({});
    expect(settings).toMatchObject({
      jwtIssuer: PLACEHOLDER_JWT_ISSUER,
      jwtAudience: [PLACEHOLDER_JWT_AUDIENCE],
      corsAllowedOrigins: ['*'],
      maxFilesPerBatch: 500,
      maxBytes: 50 * 1024 * 1024,
      uploadUrlTtlSeconds: 900,
      acceptedTypes: [...DEFAULT_ACCEPTED_TYPES],
      optimizerMaxConcurrency: 20,
      apiThrottle: { rateLimit: 100, burstLimit: 200 },
      tableDeletionProtection: true,
      reconcileStuckAfterSeconds: 900,
      reconcileMissedEventAfterSeconds: 600,
      maxProcessingAttempts: 10,
      reconcileSchedule: 5,
      production: false,
      lambdaArchitecture: 'arm64',
      originalsTransitionDays: 30,
      originalsStorageClass: 'GLACIER_IR',
    });
    expect(settings.variants).toEqual(DEFAULT_VARIANTS);
    expect(settings.alarmEmail).toBeUndefined();
    expect(settings.cloudFrontPublicKey).toBeUndefined();
    expect(settings.cloudFrontPrivateKeySecretArn).toBeUndefined();
    expect(usesPlaceholderJwt(settings)).toBe(true);
  });

  it('reads the string forms `cdk synth -c key=value` gives', () => {
    const settings = parseSettings({
      jwtIssuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
      jwtAudience: 'web, cli',
      corsAllowedOrigins: '["https://a.example.com","https://b.example.com"]',
      maxBytes: '1048576',
      acceptedTypes: 'image/jpeg,image/png',
      variants: '[{"name":"small","width":100,"height":100,"format":"avif","quality":50}]',
      apiThrottle: '{"rateLimit":10,"burstLimit":20}',
      tableDeletionProtection: 'false',
    });
    expect(settings).toMatchObject({
      jwtAudience: ['web', 'cli'],
      corsAllowedOrigins: ['https://a.example.com', 'https://b.example.com'],
      maxBytes: 1_048_576,
      acceptedTypes: ['image/jpeg', 'image/png'],
      variants: [{ name: 'small', width: 100, height: 100, fit: 'inside', format: 'avif', quality: 50 }],
      apiThrottle: { rateLimit: 10, burstLimit: 20 },
      tableDeletionProtection: false,
    });
    expect(usesPlaceholderJwt(settings)).toBe(false);
  });

  it.each([
    ['jwtIssuer', 'http://auth.example.com/'],
    ['maxFilesPerBatch', '0'],
    ['maxBytes', 'lots'],
    ['acceptedTypes', 'image/bmp'],
    [
      'variants',
      '[{"name":"a","width":1,"height":1,"format":"webp","quality":1},{"name":"a","width":2,"height":2,"format":"webp","quality":1}]',
    ],
    ['variants', 'not json'],
    ['optimizerMaxConcurrency', '1'],
    ['apiThrottle', '{"rateLimit":10}'],
    ['alarmEmail', 'not-an-address'],
    ['tableDeletionProtection', 'maybe'],
    ['reconcileStuckAfterSeconds', '0'],
    ['reconcileMissedEventAfterSeconds', 'soon'],
    ['maxProcessingAttempts', '0'],
    ['reconcileSchedule', '0'],
    ['reconcileSchedule', '2.5'],
    ['production', 'yes'],
    ['lambdaArchitecture', 'sparc'],
    ['originalsTransitionDays', '0'],
    ['originalsStorageClass', 'DEEP_ARCHIVE'],
    ['cloudFrontPublicKey', 'not a key'],
    ['cloudFrontPrivateKeySecretArn', 'photo-intake/cloudfront-key'],
  ])('refuses %s = %s, naming the setting', (key, value) => {
    expect(() => parseSettings({ [key]: value })).toThrow(key);
  });

  it('takes the CloudFront key settings together or not at all, and only an RSA 2048 public key', () => {
    expect(() => parseSettings({ cloudFrontPublicKey: PUBLIC_KEY })).toThrow('cloudFrontPrivateKeySecretArn');
    expect(() => parseSettings({ cloudFrontPrivateKeySecretArn: SECRET_ARN })).toThrow('cloudFrontPublicKey');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    expect(() =>
      parseSettings({ cloudFrontPublicKey: small, cloudFrontPrivateKeySecretArn: SECRET_ARN }),
    ).toThrow(/RSA 2048[\s\S]*cloudFrontPublicKey/);
    expect(
      parseSettings({ cloudFrontPublicKey: PUBLIC_KEY, cloudFrontPrivateKeySecretArn: SECRET_ARN }),
    ).toMatchObject({ cloudFrontPublicKey: PUBLIC_KEY, cloudFrontPrivateKeySecretArn: SECRET_ARN });
  });

  it('refuses a transition to STANDARD_IA before the 30 days S3 requires', () => {
    expect(() => parseSettings({ originalsStorageClass: 'STANDARD_IA', originalsTransitionDays: 7 })).toThrow(
      'originalsTransitionDays',
    );
    expect(
      parseSettings({ originalsStorageClass: 'STANDARD_IA', originalsTransitionDays: 30 }),
    ).toMatchObject({
      originalsStorageClass: 'STANDARD_IA',
    });
  });
});

describe('stages', () => {
  let outdir: string;
  beforeAll(() => {
    outdir = mkdtempSync(join(tmpdir(), 'image-pipeline-stages-'));
  });
  afterAll(() => {
    if (outdir) rmSync(outdir, { recursive: true, force: true });
  });
  const production = {
    production: true,
    jwtIssuer: 'https://auth.example.com/',
    jwtAudience: 'photo-intake-web',
    corsAllowedOrigins: 'https://photos.example.com',
    alarmEmail: 'ops@example.com',
    cloudFrontPublicKey: PUBLIC_KEY,
    cloudFrontPrivateKeySecretArn: SECRET_ARN,
  };
  const synthStage = (settings: Record<string, unknown>, stage = 'prod') =>
    stageStack(outdir, settings, { bundle: false, stage }).stack;

  it('builds the dev stage from cdk.json when no stage is given, as PhotoIntake-dev', () => {
    const app = testApp(outdir, {}, { bundle: false });
    const { stage, declared } = stageFromContext(app);
    expect(stage).toBe(DEFAULT_STAGE);
    expect(stage).toBe('dev');
    // The shipped cdk.json declares it, so `cdk deploy` with no flags is reproducible.
    expect(declared).toBe(true);
    expect(synthStage({}, 'dev').stackName).toBe('PhotoIntake-dev');
  });

  it('gives -c stage=<name> its own stack, with the settings cdk.json keeps for that stage', () => {
    const app = testApp(
      outdir,
      { stage: 'qa', stages: { qa: { maxFilesPerBatch: 250, alarmEmail: 'qa@example.com' }, dev: {} } },
      { bundle: false },
    );
    const { stage, settings, declared } = stageFromContext(app);
    expect({ stage, declared }).toEqual({ stage: 'qa', declared: true });
    expect(settings).toMatchObject({ maxFilesPerBatch: 250, alarmEmail: 'qa@example.com' });
    const stack = synthStage({ maxFilesPerBatch: 250 }, 'qa');
    expect(stack.stackName).toBe('PhotoIntake-qa');
    // Every taggable resource says which stage it belongs to.
    const table = Object.values(Template.fromStack(stack).findResources('AWS::DynamoDB::Table'))[0];
    expect(table?.Properties.Tags).toContainEqual({ Key: 'photo-intake:stage', Value: 'qa' });
  });

  it('refuses a setting given outside a stage (it would revert on the next deploy), naming where it belongs', () => {
    const app = testApp(outdir, { stage: 'qa', jwtIssuer: 'https://auth.example.com/' }, { bundle: false });
    expect(() => stageFromContext(app)).toThrow(
      /jwtIssuer given outside a stage[\s\S]*"stages" -> "qa" -> "jwtIssuer"/,
    );
  });

  it('refuses unknown settings in a stage and bad stage names', () => {
    const typo = testApp(outdir, { stage: 'qa', stages: { qa: { jwtIssuerUrl: 'x' } } }, { bundle: false });
    expect(() => stageFromContext(typo)).toThrow('unknown setting jwtIssuerUrl');
    for (const bad of ['Prod', 'prod_1', '1prod', 'a'.repeat(21)]) {
      expect(() => stageFromContext(testApp(outdir, { stage: bad }, { bundle: false }))).toThrow(
        'Invalid stage',
      );
    }
    const badValue = testApp(
      outdir,
      { stage: 'qa', stages: { qa: { maxBytes: 'lots' } } },
      { bundle: false },
    );
    expect(() => stageFromContext(badValue)).toThrow(/Stage qa[\s\S]*maxBytes/);
  });

  it.each([
    ['jwtIssuer', { jwtIssuer: undefined }],
    ['jwtAudience', { jwtAudience: undefined }],
    ['corsAllowedOrigins', { corsAllowedOrigins: '*' }],
    ['corsAllowedOrigins', { corsAllowedOrigins: 'https://photos.example.com,*' }],
    ['cloudFrontPublicKey', { cloudFrontPublicKey: undefined, cloudFrontPrivateKeySecretArn: undefined }],
  ])('fails the synth of a production stage without %s, naming the setting to set', (key, change) => {
    const settings = Object.fromEntries(
      Object.entries({ ...production, ...change }).filter(([, value]) => value !== undefined),
    );
    expect(() => synthStage(settings)).toThrow(
      new RegExp(`Stage prod is a production stage[\\s\\S]*"stages" -> "prod" -> "${key}"`),
    );
    // The same settings are fine for a stage that is not production.
    expect(() => synthStage({ ...settings, production: false })).not.toThrow();
  });

  it('synthesizes a complete production stage, and warns loudly when it has no alarm email', () => {
    const complete = synthStage(production);
    expect(Annotations.fromStack(complete).findWarning('*', Match.stringLikeRegexp('alarmEmail'))).toEqual(
      [],
    );
    const { alarmEmail: _, ...withoutEmail } = production;
    const silent = synthStage(withoutEmail);
    const warnings = Annotations.fromStack(silent).findWarning('*', Match.stringLikeRegexp('NO alarmEmail'));
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings[0]?.entry.data)).toContain('ALARMS WILL REACH NO ONE');
  });

  it('ships a prod stage in cdk.json that cannot be deployed until its settings are filled in', () => {
    const app = testApp(outdir, { stage: 'prod' }, { bundle: false });
    const { stage, settings } = stageFromContext(app);
    expect(settings.production).toBe(true);
    expect(() => checkProductionSettings(stage, settings)).toThrow('jwtIssuer');
  });
});

describe('reconciler thresholds', () => {
  it('requires the stuck threshold to exceed the work queue visibility timeout', () => {
    expect(() => checkReconcileSettings({ reconcileStuckAfterSeconds: 541 }, 541)).toThrow(
      'reconcileStuckAfterSeconds',
    );
    expect(() => checkReconcileSettings({ reconcileStuckAfterSeconds: 300 }, 541)).toThrow(
      /above the work queue's visibility timeout \(541 s\)/,
    );
    expect(() => checkReconcileSettings({ reconcileStuckAfterSeconds: 542 }, 541)).not.toThrow();
  });

  it('refuses to build a stack whose stuck threshold is not above the real visibility timeout', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'image-pipeline-reconcile-'));
    const build = (settings: Record<string, unknown>) =>
      stageStack(outdir, settings, { bundle: false }).stack;
    try {
      const reference = build({});
      const visibility = Template.fromStack(reference).toJSON().Resources[
        reference.getLogicalId(reference.optimizer.queue.node.defaultChild as CfnElement)
      ].Properties.VisibilityTimeout as number;
      expect(visibility).toBeGreaterThan(60);
      // The default (900 s) is above it.
      expect(parseSettings({}).reconcileStuckAfterSeconds).toBeGreaterThan(visibility);
      for (const tooLow of [60, visibility - 1, visibility]) {
        expect(() => build({ reconcileStuckAfterSeconds: String(tooLow) })).toThrow(
          `reconcileStuckAfterSeconds (${tooLow}) must be above the work queue's visibility timeout (${visibility} s)`,
        );
      }
      expect(() => build({ reconcileStuckAfterSeconds: String(visibility + 1) })).not.toThrow();
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe('synth without JWT context', () => {
  let outdir: string;
  let stack: ImagePipelineStack;

  beforeAll(() => {
    outdir = mkdtempSync(join(tmpdir(), 'image-pipeline-settings-'));
    // Only the settings matter here, so the functions are not bundled.
    ({ stack } = stageStack(outdir, {}, { bundle: false }));
  });

  afterAll(() => {
    if (outdir) rmSync(outdir, { recursive: true, force: true });
  });

  it('still synthesizes, with the placeholders and a warning to set them', () => {
    Template.fromStack(stack).hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      JwtConfiguration: { Issuer: PLACEHOLDER_JWT_ISSUER, Audience: [PLACEHOLDER_JWT_AUDIENCE] },
    });
    const warnings = Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp('jwtIssuer/jwtAudience are not set'),
    );
    expect(warnings).toHaveLength(1);
  });

  it('without a CloudFront key, has no distribution, presigns S3 GETs (the API may GetObject), and says why that is weaker', () => {
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::CloudFront::Distribution', 0);
    const warnings = Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp('no CloudFront signing key'),
    );
    expect(warnings).toHaveLength(1);
    const apiRole = stack.getLogicalId(stack.api.function.role.node.defaultChild as CfnElement);
    const apiStatements = Object.values(template.findResources('AWS::IAM::Policy'))
      .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: apiRole }]))
      .flatMap(
        (p) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[],
      );
    const variants = stack.getLogicalId(stack.storage.variantsBucket.node.defaultChild as CfnElement);
    const onVariants = apiStatements.filter(
      (st) =>
        JSON.stringify(st.Resource) ===
        JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [variants, 'Arn'] }, '/*']] }),
    );
    expect(onVariants.flatMap((st) => [st.Action].flat()).sort()).toEqual([
      's3:DeleteObject',
      's3:GetObject',
    ]);
    expect(JSON.stringify(apiStatements)).not.toContain('secretsmanager');
  });
});
