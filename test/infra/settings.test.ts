import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CfnElement } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ACCEPTED_TYPES } from '../../functions/shared/config.ts';
import { DEFAULT_VARIANTS } from '../../functions/shared/variants.ts';
import { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import {
  checkReconcileSettings,
  PLACEHOLDER_JWT_AUDIENCE,
  PLACEHOLDER_JWT_ISSUER,
  parseSettings,
  settingsFromContext,
  usesPlaceholderJwt,
} from '../../lib/settings.ts';
import { testApp } from './cdk-app.ts';

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
    });
    expect(settings.variants).toEqual(DEFAULT_VARIANTS);
    expect(settings.alarmEmail).toBeUndefined();
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
  ])('refuses %s = %s, naming the setting', (key, value) => {
    expect(() => parseSettings({ [key]: value })).toThrow(key);
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
    const build = (context: Record<string, unknown>) => {
      const app = testApp(outdir, context, { bundle: false });
      return new ImagePipelineStack(app, 'ImagePipelineStack', { settings: settingsFromContext(app) });
    };
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
    const app = testApp(outdir, {}, { bundle: false });
    stack = new ImagePipelineStack(app, 'ImagePipelineStack', { settings: settingsFromContext(app) });
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
});
