import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ACCEPTED_TYPES } from '../../functions/shared/config.ts';
import { DEFAULT_VARIANTS } from '../../functions/shared/image/variants.ts';
import { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import {
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
  ])('refuses %s = %s, naming the setting', (key, value) => {
    expect(() => parseSettings({ [key]: value })).toThrow(key);
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
