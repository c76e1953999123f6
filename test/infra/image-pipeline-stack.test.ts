import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, type CfnElement, Duration, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import nag from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, routeKey } from '../../contract/routes.ts';
import { TABLE_SCHEMA } from '../../functions/shared/records/schema.ts';
import { KEPT_ORIGINAL_TAG } from '../../functions/shared/storage/object-keys.ts';
import { PipelineFunction } from '../../lib/constructs/pipeline-function.ts';
import type { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import { stageStack } from './cdk-app.ts';

const { AwsSolutionsChecks } = nag;

const PUBLIC_KEY = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
  type: 'spki',
  format: 'pem',
}) as string;
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:photo-intake/test/cloudfront-AbC123';

// Values that differ from every default, in the forms cdk.json may give (strings and typed JSON).
const SETTINGS = {
  jwtIssuer: 'https://auth.example.com/',
  jwtAudience: 'photo-intake-web,photo-intake-cli',
  corsAllowedOrigins: ['https://photos.example.com'],
  maxFilesPerBatch: '250',
  maxBytes: 20 * 1024 * 1024,
  uploadUrlTtlSeconds: 600,
  variants: JSON.stringify([{ name: 'thumb', width: 200, height: 200, format: 'webp', quality: 70 }]),
  optimizerMaxConcurrency: 7,
  apiThrottle: { rateLimit: 50, burstLimit: 80 },
  alarmEmail: 'ops@example.com',
  reconcileStuckAfterSeconds: '1200',
  reconcileMissedEventAfterSeconds: 300,
  maxProcessingAttempts: '8',
  cloudFrontPublicKey: PUBLIC_KEY,
  cloudFrontPrivateKeySecretArn: SECRET_ARN,
  originalsTransitionDays: 45,
  originalsStorageClass: 'STANDARD_IA',
};

type Props = Record<string, unknown>;
type Resource = { Type: string; Properties: Props; DeletionPolicy?: string; UpdateReplacePolicy?: string };

let outdir: string;
let app: App;
let stack: ImagePipelineStack;
let template: Template;
let assemblyDir: string;
let logicalId: (construct: IConstruct) => string;
let resource: (construct: IConstruct) => Resource;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'image-pipeline-infra-'));
  ({ app, stack } = stageStack(outdir, SETTINGS));
  // The one synthesis (it bundles both functions and installs sharp for linux-arm64).
  assemblyDir = app.synth().directory;
  template = Template.fromStack(stack);
  logicalId = (construct) => stack.getLogicalId(construct.node.defaultChild as CfnElement);
  resource = (construct) => {
    const found = template.toJSON().Resources[logicalId(construct)] as Resource | undefined;
    if (!found) throw new Error(`no resource for ${construct.node.path}`);
    return found;
  };
});

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

const ref = (construct: IConstruct) => ({ Ref: logicalId(construct) });
const arn = (construct: IConstruct) => ({ 'Fn::GetAtt': [logicalId(construct), 'Arn'] });

describe('storage', () => {
  it('blocks public access, encrypts and refuses plain HTTP on every bucket', () => {
    const buckets = template.findResources('AWS::S3::Bucket');
    // Uploads, variants, server access logs, and CloudFront's logs.
    expect(Object.keys(buckets)).toHaveLength(4);
    for (const [id, bucket] of Object.entries(buckets)) {
      expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(bucket.Properties.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      });
      expect(bucket.DeletionPolicy).toBe('Retain');
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Principal: { AWS: '*' },
              Action: 's3:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });

  it('logs server access of the upload, variants and CDN log buckets to the access-log bucket', () => {
    const { uploadBucket, variantsBucket, accessLogBucket } = stack.storage;
    if (!stack.delivery) throw new Error('no CloudFront');
    for (const bucket of [uploadBucket, variantsBucket, stack.delivery.logBucket]) {
      expect(resource(bucket).Properties.LoggingConfiguration).toMatchObject({
        DestinationBucketName: ref(accessLogBucket),
      });
    }
    expect(resource(accessLogBucket).Properties.LoggingConfiguration).toBeUndefined();
  });

  it('lets browsers PUT to the upload bucket from the configured origins only', () => {
    expect(resource(stack.storage.uploadBucket).Properties.CorsConfiguration).toEqual({
      CorsRules: [
        {
          AllowedMethods: ['PUT'],
          AllowedOrigins: ['https://photos.example.com'],
          AllowedHeaders: [
            'content-type',
            'content-length',
            'x-amz-checksum-sha256',
            'x-amz-tagging',
            'x-amz-sdk-checksum-algorithm',
          ],
          ExposedHeaders: ['ETag'],
          MaxAge: 3600,
        },
      ],
    });
  });

  it('aborts multipart uploads after a day and expires abandoned incoming uploads after 7 days', () => {
    const rules = (
      resource(stack.storage.uploadBucket).Properties.LifecycleConfiguration as { Rules: Props[] }
    ).Rules;
    expect(rules).toHaveLength(2);
    expect(rules).toContainEqual(
      expect.objectContaining({
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
        Status: 'Enabled',
      }),
    );
    expect(rules).toContainEqual(
      expect.objectContaining({
        Prefix: 'uploads/',
        TagFilters: [{ Key: 'pipeline-state', Value: 'incoming' }],
        ExpirationInDays: 7,
        Status: 'Enabled',
      }),
    );
  });

  it("moves kept originals (and only those) to the stage's storage class after its days", () => {
    const rules = (
      resource(stack.storage.variantsBucket).Properties.LifecycleConfiguration as { Rules: Props[] }
    ).Rules;
    // The tag is the one the optimizer writes a kept original with, beside its variants.
    expect(rules).toContainEqual({
      Id: 'transition-kept-originals',
      TagFilters: [{ Key: KEPT_ORIGINAL_TAG.key, Value: KEPT_ORIGINAL_TAG.value }],
      Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 45 }],
      Status: 'Enabled',
    });
  });

  it('announces only objects created under uploads/ in the upload bucket, to the work queue', () => {
    template.resourceCountIs('Custom::S3BucketNotifications', 1);
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      BucketName: ref(stack.storage.uploadBucket),
      NotificationConfiguration: {
        QueueConfigurations: [
          {
            Events: ['s3:ObjectCreated:*'],
            Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'uploads/' }] } },
            QueueArn: arn(stack.optimizer.queue),
          },
        ],
      },
    });
  });

  it('creates the table of TABLE_SCHEMA: on demand, PITR, TTL, encrypted, protected and retained', () => {
    const table = resource(stack.storage.table);
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'expiresAtEpoch', Enabled: true },
      SSESpecification: { SSEEnabled: true },
      DeletionProtectionEnabled: true,
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    });
    const indexes = Object.values(TABLE_SCHEMA.indexes) as {
      indexName: string;
      partitionKey: string;
      sortKey?: string;
      projection?: string;
    }[];
    expect(table.Properties.GlobalSecondaryIndexes).toEqual(
      indexes.map((index) => ({
        IndexName: index.indexName,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: 'HASH' },
          ...(index.sortKey ? [{ AttributeName: index.sortKey, KeyType: 'RANGE' }] : []),
        ],
        Projection: { ProjectionType: index.projection ?? 'ALL' },
      })),
    );
    // The index that finds an image by id holds keys only, so that no status move rewrites it.
    expect(table.Properties.GlobalSecondaryIndexes).toContainEqual(
      expect.objectContaining({ IndexName: 'byImage', Projection: { ProjectionType: 'KEYS_ONLY' } }),
    );
    // The reconciler's sparse index of unfinished images, by shard and age.
    expect(table.Properties.GlobalSecondaryIndexes).toContainEqual({
      IndexName: 'byOpenAge',
      KeySchema: [
        { AttributeName: 'openShard', KeyType: 'HASH' },
        { AttributeName: 'updatedAt', KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'ALL' },
    });
    expect(table.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: 'openShard', AttributeType: 'S' },
        { AttributeName: 'updatedAt', AttributeType: 'S' },
      ]),
    );
  });
});

describe('work queue and optimizer', () => {
  it('moves a message to the encrypted, TLS-only dead-letter queue after 5 receives', () => {
    const { queue, deadLetterQueue } = stack.optimizer;
    expect(resource(queue).Properties).toMatchObject({
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: arn(deadLetterQueue), maxReceiveCount: 5 },
    });
    expect(resource(deadLetterQueue).Properties).toMatchObject({
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86_400,
    });
    for (const q of [queue, deadLetterQueue]) {
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [ref(q)],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
  });

  it('keeps a message invisible for at least 6 times the optimizer timeout', () => {
    const visibility = resource(stack.optimizer.queue).Properties.VisibilityTimeout as number;
    const timeout = resource(stack.optimizer.function.fn).Properties.Timeout as number;
    expect(timeout).toBeGreaterThan(0);
    expect(visibility).toBeGreaterThanOrEqual(6 * timeout);
  });

  it('runs the optimizer on Node.js 24, arm64, with memory for sharp and its limits from the context', () => {
    const fn = resource(stack.optimizer.function.fn).Properties;
    expect(fn).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Timeout: 90 });
    expect(fn.MemorySize).toBeGreaterThanOrEqual(1536);
    const env = (fn.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env).toMatchObject({
      MALLOC_ARENA_MAX: '2',
      PROCESSING_TIMEOUT_MS: '60000',
      UPLOAD_PREFIX: 'uploads/',
      MAX_FILES_PER_BATCH: '250',
      MAX_BYTES: String(20 * 1024 * 1024),
      UPLOAD_URL_TTL_SECONDS: '600',
      TABLE_NAME: ref(stack.storage.table),
      UPLOAD_BUCKET: ref(stack.storage.uploadBucket),
      VARIANTS_BUCKET: ref(stack.storage.variantsBucket),
      QUEUE_URL: ref(stack.optimizer.queue),
      POWERTOOLS_SERVICE_NAME: 'photo-intake-optimizer',
    });
    expect(JSON.parse(env.VARIANTS as string)).toEqual([
      { name: 'thumb', width: 200, height: 200, fit: 'inside', format: 'webp', quality: 70 },
    ]);
    // The image gives up before Lambda kills the invocation, so the failure can be recorded.
    expect(Number(env.PROCESSING_TIMEOUT_MS)).toBeLessThan((fn.Timeout as number) * 1000);
    // The optimizer turns a transient failure into a final one on the queue's last receive.
    const redrive = resource(stack.optimizer.queue).Properties.RedrivePolicy as { maxReceiveCount: number };
    expect(env.MAX_RECEIVE_COUNT).toBe(String(redrive.maxReceiveCount));
  });

  it('logs the optimizer to a log group with bounded retention', () => {
    const fn = resource(stack.optimizer.function.fn).Properties;
    expect(fn.LoggingConfig).toEqual({ LogGroup: ref(stack.optimizer.function.logGroup) });
    expect(resource(stack.optimizer.function.logGroup).Properties.RetentionInDays).toBe(30);
  });

  it('consumes the queue one image per invocation with partial failures and bounded concurrency', () => {
    // The optimizer's, the relay's (table stream) and the notifier's (webhook queue).
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 3);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: ref(stack.optimizer.function.fn),
      EventSourceArn: arn(stack.optimizer.queue),
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 7 },
    });
  });

  it('ships sharp installed for linux-arm64 next to an ESM bundle', () => {
    const code = resource(stack.optimizer.function.fn).Properties.Code as { S3Key: string };
    const assetDir = join(assemblyDir, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
    expect(existsSync(join(assetDir, 'index.mjs'))).toBe(true);
    expect(existsSync(join(assetDir, 'node_modules/sharp/package.json'))).toBe(true);
    expect(existsSync(join(assetDir, 'node_modules/@img/sharp-linux-arm64'))).toBe(true);
    expect(existsSync(join(assetDir, 'node_modules/heic-decode/package.json'))).toBe(true);
    // Installed for Lambda, not for the machine that synthesized.
    expect(existsSync(join(assetDir, 'node_modules/@img/sharp-linux-x64'))).toBe(false);
    // ESM, with `require` defined for the CommonJS code bundled into it.
    expect(readFileSync(join(assetDir, 'index.mjs'), 'utf8')).toMatch(
      /^import \{ createRequire as \w+ \} from 'node:module'; const require = \w+\(import\.meta\.url\);/,
    );
  });
});

describe('reconciler', () => {
  const functions = () => Object.values(template.findResources('AWS::Lambda::Function'));

  it('runs every 5 minutes from an EventBridge rule, retried twice, never older than a period', () => {
    const scheduled = Object.values(template.findResources('AWS::Events::Rule')).filter(
      (rule) => rule.Properties.ScheduleExpression !== undefined,
    );
    expect(scheduled).toHaveLength(1);
    expect(resource(stack.reconciler.rule).Properties).toMatchObject({
      ScheduleExpression: 'rate(5 minutes)',
      State: 'ENABLED',
      Targets: [
        {
          Arn: arn(stack.reconciler.function.fn),
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 300 },
        },
      ],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: arn(stack.reconciler.function.fn),
      Principal: 'events.amazonaws.com',
      SourceArn: arn(stack.reconciler.rule),
    });
    // The schedule is the retry: Lambda does not run a failed invocation again.
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: ref(stack.reconciler.function.fn),
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 300,
    });
  });

  it('runs on Node.js 24, arm64, 512 MB, 5 minutes, logging to its own bounded log group', () => {
    const fn = resource(stack.reconciler.function.fn).Properties;
    expect(fn).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      MemorySize: 512,
      Timeout: 300,
      Role: arn(stack.reconciler.function.role),
      LoggingConfig: { LogGroup: ref(stack.reconciler.function.logGroup) },
    });
    expect(resource(stack.reconciler.function.logGroup).Properties.RetentionInDays).toBe(30);
    expect(stack.reconciler.function.role).not.toBe(stack.optimizer.function.role);
  });

  it('gets both queues, the table, the upload bucket and its thresholds from the context', () => {
    const env = (
      resource(stack.reconciler.function.fn).Properties.Environment as { Variables: Record<string, unknown> }
    ).Variables;
    expect(env).toEqual({
      POWERTOOLS_SERVICE_NAME: 'photo-intake-reconciler',
      POWERTOOLS_LOG_LEVEL: 'INFO',
      TABLE_NAME: ref(stack.storage.table),
      UPLOAD_BUCKET: ref(stack.storage.uploadBucket),
      VARIANTS_BUCKET: ref(stack.storage.variantsBucket),
      UPLOAD_PREFIX: 'uploads/',
      QUEUE_URL: ref(stack.optimizer.queue),
      DLQ_URL: ref(stack.optimizer.deadLetterQueue),
      RECONCILE_STUCK_AFTER_SECONDS: '1200',
      RECONCILE_MISSED_EVENT_AFTER_SECONDS: '300',
      MAX_ATTEMPTS: '8',
      RECORD_RETENTION_DAYS: '30',
    });
    // It never requeues an image whose message an optimizer invocation may still hold.
    const visibility = resource(stack.optimizer.queue).Properties.VisibilityTimeout as number;
    expect(Number(env.RECONCILE_STUCK_AFTER_SECONDS)).toBeGreaterThan(visibility);
  });

  it('is the only function told where the dead-letter queue is', () => {
    const withDlq = functions().filter(
      (fn) => (fn.Properties.Environment?.Variables as Props | undefined)?.DLQ_URL !== undefined,
    );
    expect(withDlq).toEqual([resource(stack.reconciler.function.fn)]);
  });
});

describe('edge delivery (CloudFront)', () => {
  const delivery = () => {
    if (!stack.delivery) throw new Error('the stage has a signing key, so it has a distribution');
    return stack.delivery;
  };
  const distribution = () => resource(delivery().distribution).Properties.DistributionConfig as Props;

  it('serves the variants bucket through origin access control, to signed URLs of its key group only', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    const config = distribution();
    const [origin] = config.Origins as Props[];
    expect(origin).toMatchObject({
      DomainName: { 'Fn::GetAtt': [logicalId(stack.storage.variantsBucket), 'RegionalDomainName'] },
      OriginAccessControlId: { 'Fn::GetAtt': [expect.any(String), 'Id'] },
      S3OriginConfig: { OriginAccessIdentity: '' },
    });
    expect(config.DefaultCacheBehavior).toMatchObject({
      ViewerProtocolPolicy: 'https-only',
      AllowedMethods: ['GET', 'HEAD'],
      TrustedKeyGroups: [ref(delivery().keyGroup)],
    });
    expect(resource(delivery().keyGroup).Properties.KeyGroupConfig).toMatchObject({
      Items: [ref(delivery().publicKey)],
    });
    // The public key is the stage's setting, as given.
    expect(resource(delivery().publicKey).Properties.PublicKeyConfig).toMatchObject({
      EncodedKey: PUBLIC_KEY,
    });
    template.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: { OriginAccessControlOriginType: 's3', SigningBehavior: 'always' },
    });
  });

  it('lets only this distribution read variants from the bucket', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: ref(stack.storage.variantsBucket),
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudfront.amazonaws.com' },
            Action: 's3:GetObject',
            Condition: {
              StringEquals: {
                'AWS:SourceArn': {
                  'Fn::Join': ['', Match.arrayWith([`:distribution/`, ref(delivery().distribution)])],
                },
              },
            },
          }),
        ]),
      },
    });
  });

  it('caches at the edge, logs, answers CORS for the configured origins', () => {
    const config = distribution();
    expect(config).toMatchObject({
      Enabled: true,
      HttpVersion: 'http2and3',
      PriceClass: 'PriceClass_100',
      Logging: { Bucket: { 'Fn::GetAtt': [logicalId(delivery().logBucket), 'RegionalDomainName'] } },
    });
    // CachingOptimized (a managed policy): query strings, and so the signature, are not in the key.
    expect((config.DefaultCacheBehavior as Props).CachePolicyId).toBe('658327ea-f89d-4fab-a63d-7e88639e58f6');
    template.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: {
        CorsConfig: Match.objectLike({
          AccessControlAllowOrigins: { Items: ['https://photos.example.com'] },
          AccessControlAllowMethods: { Items: ['GET', 'HEAD'] },
          AccessControlAllowCredentials: false,
        }),
      },
    });
  });

  it('tells the API where the distribution is, which key signs, and where the private key is', () => {
    const env = (resource(stack.api.function.fn).Properties.Environment as { Variables: Props }).Variables;
    expect(env).toMatchObject({
      VARIANTS_CDN_URL: {
        'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [logicalId(delivery().distribution), 'DomainName'] }]],
      },
      CLOUDFRONT_KEY_PAIR_ID: ref(delivery().publicKey),
      CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: SECRET_ARN,
    });
    // Only the API signs; the other functions know nothing of the key.
    for (const fn of [stack.optimizer.function, stack.reconciler.function]) {
      const other = (resource(fn.fn).Properties.Environment as { Variables: Props }).Variables;
      expect(Object.keys(other).filter((k) => /CDN|CLOUDFRONT/.test(k))).toEqual([]);
    }
    template.hasOutput('VariantsCdnUrl', {
      Value: {
        'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [logicalId(delivery().distribution), 'DomainName'] }]],
      },
    });
  });
});

describe('HTTP API', () => {
  const routes = () =>
    Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties as Props);

  it('has exactly the routes of ROUTES', () => {
    expect(routes().map((r) => r.RouteKey as string)).toEqual(ROUTES.map(routeKey));
  });

  it('puts the JWT authorizer on every authenticated route and none on the others', () => {
    const [authorizerId] = Object.keys(template.findResources('AWS::ApiGatewayV2::Authorizer'));
    const byKey = new Map(routes().map((r) => [r.RouteKey, r]));
    for (const route of ROUTES) {
      const created = byKey.get(routeKey(route));
      if (route.authenticated) {
        expect(created).toMatchObject({ AuthorizationType: 'JWT', AuthorizerId: { Ref: authorizerId } });
      } else {
        expect(created?.AuthorizationType).toBe('NONE');
        expect(created?.AuthorizerId).toBeUndefined();
      }
    }
    expect(byKey.get('GET /v1/health')?.AuthorizationType).toBe('NONE');
  });

  it('validates JWTs against the issuer and audience from the context', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: {
        Issuer: 'https://auth.example.com/',
        Audience: ['photo-intake-web', 'photo-intake-cli'],
      },
    });
  });

  it('throttles the $default stage and writes its access log', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
    const stage = Object.values(template.findResources('AWS::ApiGatewayV2::Stage'))[0]?.Properties as Props;
    expect(stage).toMatchObject({
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 80 },
    });
    const logs = stage.AccessLogSettings as {
      DestinationArn: { 'Fn::GetAtt': [string, string] };
      Format: string;
    };
    expect(template.toJSON().Resources[logs.DestinationArn['Fn::GetAtt'][0]].Type).toBe(
      'AWS::Logs::LogGroup',
    );
    expect(JSON.parse(logs.Format)).toMatchObject({
      requestId: '$context.requestId',
      status: '$context.status',
    });
  });

  it('sends every route to the API function, a small arm64 Node.js 24 Lambda', () => {
    const apiFn = stack.api.function.fn;
    expect(resource(apiFn).Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      MemorySize: 512,
      Timeout: 10,
    });
    const integrations = Object.values(template.findResources('AWS::ApiGatewayV2::Integration'));
    expect(integrations).toHaveLength(1);
    expect(integrations[0]?.Properties).toMatchObject({
      IntegrationType: 'AWS_PROXY',
      IntegrationUri: arn(apiFn),
      PayloadFormatVersion: '2.0',
    });
  });

  it('answers CORS preflights for the configured origins', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      CorsConfiguration: Match.objectLike({
        AllowOrigins: ['https://photos.example.com'],
        AllowHeaders: Match.arrayWith(['authorization', 'content-type']),
      }),
    });
  });
});

describe('permissions', () => {
  const statementsOf = (roleConstruct: IConstruct) =>
    Object.values(template.findResources('AWS::IAM::Policy'))
      .filter((p) =>
        (p.Properties.Roles as unknown[]).some(
          (r) => JSON.stringify(r) === JSON.stringify(ref(roleConstruct)),
        ),
      )
      .flatMap((p) => p.Properties.PolicyDocument.Statement as Props[]);

  /** Every action a role may take, as `action resource` with the resources named, sorted. */
  const permissionsOf = (roleConstruct: IConstruct): string[] => {
    const names = new Map<string, string>([
      [logicalId(stack.storage.table), 'table'],
      [logicalId(stack.storage.uploadBucket), 'upload-bucket'],
      [logicalId(stack.storage.variantsBucket), 'variants-bucket'],
      [logicalId(stack.optimizer.queue), 'work-queue'],
      [logicalId(stack.optimizer.deadLetterQueue), 'dead-letter-queue'],
      [logicalId(stack.optimizer.function.logGroup), 'optimizer-logs'],
      [logicalId(stack.api.function.logGroup), 'api-logs'],
      [logicalId(stack.reconciler.function.logGroup), 'reconciler-logs'],
    ]);
    const nameOf = (resource: unknown): string => {
      if (typeof resource === 'string') return resource;
      const getAtt = (resource as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
      if (getAtt) return names.get(getAtt[0]) ?? getAtt[0];
      const join = (resource as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
      if (join) return join[1].map((part) => (typeof part === 'string' ? part : nameOf(part))).join('');
      return JSON.stringify(resource);
    };
    return statementsOf(roleConstruct)
      .flatMap((statement) => {
        expect(statement.Effect).toBe('Allow');
        expect(statement.Condition).toBeUndefined();
        return [statement.Action]
          .flat()
          .flatMap((action) =>
            [statement.Resource].flat().map((resource) => `${action} ${nameOf(resource)}`),
          );
      })
      .sort();
  };

  it('gives the function roles no AWS managed policy and no wildcard action or resource', () => {
    for (const fn of [stack.optimizer.function, stack.api.function, stack.reconciler.function]) {
      expect(resource(fn.role).Properties.ManagedPolicyArns).toBeUndefined();
      const statements = statementsOf(fn.role);
      expect(statements.length).toBeGreaterThan(3);
      for (const statement of statements) {
        expect([statement.Action].flat().filter((a) => String(a).includes('*'))).toEqual([]);
        expect([statement.Resource].flat()).not.toContain('*');
      }
    }
  });

  // Each list is what the function's code calls, and nothing else (see the comments in lib/constructs).
  // PutItem/UpdateItem on the table also cover TransactWriteItems, which IAM authorizes per item.
  it('lets the optimizer update records, read and remove uploads, write, read and delete variants', () => {
    expect(permissionsOf(stack.optimizer.function.role)).toEqual(
      [
        'dynamodb:GetItem table',
        'dynamodb:PutItem table',
        'dynamodb:UpdateItem table',
        's3:GetObject upload-bucket/uploads/*',
        's3:DeleteObject upload-bucket/uploads/*',
        's3:ListBucket upload-bucket',
        's3:GetObject variants-bucket/*',
        's3:PutObject variants-bucket/*',
        's3:PutObjectTagging variants-bucket/*',
        's3:DeleteObject variants-bucket/*',
        's3:ListBucket variants-bucket',
        // The SQS event source mapping polls with the function's role (CDK's grantConsumeMessages).
        'sqs:ReceiveMessage work-queue',
        'sqs:ChangeMessageVisibility work-queue',
        'sqs:GetQueueUrl work-queue',
        'sqs:DeleteMessage work-queue',
        'sqs:GetQueueAttributes work-queue',
        'logs:CreateLogStream optimizer-logs',
        'logs:PutLogEvents optimizer-logs',
      ].sort(),
    );
  });

  it('lets the API write batches, read and count records, sign uploads, and delete images', () => {
    expect(permissionsOf(stack.api.function.role)).toEqual(
      [
        'dynamodb:BatchWriteItem table',
        'dynamodb:Query table',
        'dynamodb:BatchGetItem table',
        'dynamodb:GetItem table',
        'dynamodb:PutItem table',
        'dynamodb:UpdateItem table',
        'dynamodb:DeleteItem table',
        'dynamodb:Query table/index/byImage',
        'dynamodb:Query table/index/byOpenUpload',
        's3:PutObject upload-bucket/uploads/*',
        's3:PutObjectTagging upload-bucket/uploads/*',
        's3:DeleteObject upload-bucket/uploads/*',
        // POST /v1/images/{id}/upload: has the original landed? (HeadObject; 404 needs ListBucket)
        's3:GetObject upload-bucket/uploads/*',
        's3:ListBucket upload-bucket',
        // CloudFront signs variant URLs: the API reads its private key, and never GETs variants.
        's3:DeleteObject variants-bucket/*',
        `secretsmanager:GetSecretValue ${SECRET_ARN}`,
        'logs:CreateLogStream api-logs',
        'logs:PutLogEvents api-logs',
      ].sort(),
    );
  });

  it('lets the reconciler update records, query only byOpenAge, look at uploads, queue work and read dead letters', () => {
    expect(permissionsOf(stack.reconciler.function.role)).toEqual(
      [
        'dynamodb:GetItem table',
        'dynamodb:PutItem table',
        'dynamodb:UpdateItem table',
        'dynamodb:Query table/index/byOpenAge',
        's3:GetObject upload-bucket/uploads/*',
        's3:ListBucket upload-bucket',
        'sqs:SendMessage work-queue',
        'sqs:ReceiveMessage dead-letter-queue',
        'logs:CreateLogStream reconciler-logs',
        'logs:PutLogEvents reconciler-logs',
      ].sort(),
    );
  });

  it('grants no function DescribeTable, ConditionCheckItem, or access to every index', () => {
    const all = [stack.optimizer.function, stack.api.function, stack.reconciler.function].flatMap((fn) =>
      permissionsOf(fn.role),
    );
    expect(all.filter((p) => /DescribeTable|ConditionCheckItem|index\/\*|Scan/.test(p))).toEqual([]);
  });

  it('lets only the reconciler receive from the dead-letter queue, and no one delete from it', () => {
    const dlqAccess = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
      (p.Properties.PolicyDocument.Statement as Props[]).some((s) =>
        JSON.stringify([s.Resource].flat()).includes(logicalId(stack.optimizer.deadLetterQueue)),
      ),
    );
    expect(dlqAccess.map((p) => p.Properties.Roles)).toEqual([[ref(stack.reconciler.function.role)]]);
  });
});

describe('alarms and outputs', () => {
  const alarms = () =>
    Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties as Props);
  const functionAlarms = (fn: IConstruct) =>
    alarms().filter(
      (a) => JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: 'FunctionName', Value: ref(fn) }]),
    );

  it('lets CloudWatch alarms of this account, and only those, publish to the alarm topic', () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [ref(stack.alarms.topic)],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Sid: 'AllowThisAccountsAlarmsToPublish',
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: ref(stack.alarms.topic),
            Condition: {
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
              ArnLike: {
                'aws:SourceArn': {
                  'Fn::Join': [
                    '',
                    [
                      'arn:',
                      { Ref: 'AWS::Partition' },
                      ':cloudwatch:',
                      { Ref: 'AWS::Region' },
                      ':',
                      { Ref: 'AWS::AccountId' },
                      ':alarm:*',
                    ],
                  ],
                },
              },
            },
          },
        ]),
      },
    });
  });

  it('notifies the topic when any alarm fires and when it clears', () => {
    // 3 per function (5), 2 for the work DLQ and 1 each for the webhook and relay DLQs, the backlog,
    // API 5xx and latency, table throttles.
    expect(alarms()).toHaveLength(5 * 3 + 2 + 2 + 4);
    for (const alarm of alarms()) {
      expect(alarm.AlarmActions).toEqual([ref(stack.alarms.topic)]);
      expect(alarm.OKActions).toEqual([ref(stack.alarms.topic)]);
      expect(alarm.TreatMissingData).toBe('notBreaching');
      expect(alarm.AlarmDescription).toEqual(expect.any(String));
    }
  });

  it.each([
    ['optimizer', () => stack.optimizer.function.fn, 90, 300],
    ['api', () => stack.api.function.fn, 10, 300],
    ['reconciler', () => stack.reconciler.function.fn, 300, 900],
  ])(
    'alarms on %s errors, throttles and any run over 80%% of its timeout',
    (_name, fn, timeoutSeconds, errorPeriod) => {
      const byMetric = new Map(functionAlarms(fn()).map((a) => [a.MetricName, a]));
      expect([...byMetric.keys()].sort()).toEqual(['Duration', 'Errors', 'Throttles']);
      expect(byMetric.get('Errors')).toMatchObject({ Statistic: 'Sum', Threshold: 1, Period: errorPeriod });
      expect(byMetric.get('Throttles')).toMatchObject({ Statistic: 'Sum', Threshold: 1, Period: 300 });
      expect(byMetric.get('Duration')).toMatchObject({
        Statistic: 'Maximum',
        Threshold: timeoutSeconds * 1000 * 0.8,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
      expect(resource(fn()).Properties.Timeout).toBe(timeoutSeconds);
    },
  );

  it('alarms on the API p99 latency over 3 s for 15 minutes, and on 5xx', () => {
    const apiId = ref(stack.api.httpApi);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/ApiGateway',
      MetricName: 'Latency',
      Dimensions: [{ Name: 'ApiId', Value: apiId }],
      ExtendedStatistic: 'p99',
      Period: 300,
      EvaluationPeriods: 3,
      Threshold: 3000,
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/ApiGateway',
      MetricName: '5xx',
      Dimensions: [{ Name: 'ApiId', Value: apiId }],
      Statistic: 'Sum',
      Threshold: 5,
    });
  });

  it('alarms on any throttled read or write of the table or one of its indexes', () => {
    const throttle = alarms().find((a) => JSON.stringify(a.Metrics ?? '').includes('ThrottleEvents'));
    const metrics = throttle?.Metrics as {
      Id: string;
      Expression?: string;
      MetricStat?: { Metric: { MetricName: string; Dimensions: { Name: string; Value: unknown }[] } };
    }[];
    const stats = metrics.filter((m) => m.MetricStat).map((m) => m.MetricStat?.Metric);
    const watched = stats.map((m) => {
      const index = m?.Dimensions.find((d) => d.Name === 'GlobalSecondaryIndexName')?.Value ?? 'table';
      expect(m?.Dimensions).toContainEqual({ Name: 'TableName', Value: ref(stack.storage.table) });
      return `${index} ${m?.MetricName}`;
    });
    expect(watched.sort()).toEqual(
      ['table', ...Object.values(TABLE_SCHEMA.indexes).map((i) => i.indexName)]
        .flatMap((name) => [`${name} ReadThrottleEvents`, `${name} WriteThrottleEvents`])
        .sort(),
    );
    // Every series counts, a missing one as zero.
    const expression = metrics.find((m) => m.Expression)?.Expression ?? '';
    for (const m of metrics.filter((m) => m.MetricStat)) expect(expression).toContain(`FILL(${m.Id}, 0)`);
    expect(throttle).toMatchObject({ Threshold: 1, EvaluationPeriods: 1 });
  });

  it('watches one more function (e.g. a webhook notifier) with one call', () => {
    const dir = mkdtempSync(join(tmpdir(), 'image-pipeline-alarms-'));
    try {
      const { stack: other } = stageStack(dir, {}, { bundle: false });
      const notifier = new PipelineFunction(other, 'notifier', {
        entry: 'functions/reconciler/handler.ts',
        description: 'a webhook notifier',
        memorySize: 256,
        timeout: Duration.seconds(30),
        environment: {},
        architecture: 'arm64',
      });
      other.alarms.watchFunction('another-notifier', notifier, {
        impact: 'Webhooks are not being delivered.',
      });
      const watched = Object.values(Template.fromStack(other).findResources('AWS::CloudWatch::Alarm'))
        .map((a) => a.Properties as Props)
        .filter((a) =>
          JSON.stringify(a.Dimensions ?? []).includes(
            other.getLogicalId(notifier.fn.node.defaultChild as CfnElement),
          ),
        );
      expect(watched.map((a) => a.MetricName).sort()).toEqual(['Duration', 'Errors', 'Throttles']);
      expect(watched.find((a) => a.MetricName === 'Duration')?.Threshold).toBe(24_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('alarms when a dead letter waits an hour unread', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateAgeOfOldestMessage',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [logicalId(stack.optimizer.deadLetterQueue), 'QueueName'] },
        },
      ],
      Statistic: 'Maximum',
      Threshold: 3600,
    });
  });

  it('alarms on any message in the dead-letter queue, to the alarm topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [logicalId(stack.optimizer.deadLetterQueue), 'QueueName'] },
        },
      ],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [ref(stack.alarms.topic)],
    });
  });

  it('alarms on optimizer invocation errors', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: ref(stack.optimizer.function.fn) }],
      AlarmActions: [ref(stack.alarms.topic)],
    });
  });

  it('alarms on any failed reconciler run within 15 minutes', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: ref(stack.reconciler.function.fn) }],
      Statistic: 'Sum',
      Period: 900,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [ref(stack.alarms.topic)],
    });
  });

  it('encrypts the alarm topic with a key CloudWatch may use, and subscribes the alarm email', () => {
    const topic = resource(stack.alarms.topic).Properties;
    const keyId = (topic.KmsMasterKeyId as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    const key = template.toJSON().Resources[keyId] as Resource;
    expect(key.Properties.EnableKeyRotation).toBe(true);
    expect(JSON.stringify(key.Properties.KeyPolicy)).toContain('cloudwatch.amazonaws.com');
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: ref(stack.alarms.topic),
    });
  });

  it('outputs what clients and operators need', () => {
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual(
      [
        'AlarmTopicArn',
        'ApiUrl',
        'DashboardUrl',
        'EventBusName',
        'WebhookSecretArn',
        'DistributionId',
        'VariantsCdnUrl',
        'DlqUrl',
        'QueueUrl',
        'ReconcilerFunctionName',
        'TableName',
        'UploadBucketName',
        'VariantsBucketName',
      ].sort(),
    );
    template.hasOutput('ReconcilerFunctionName', { Value: ref(stack.reconciler.function.fn) });
    template.hasOutput('QueueUrl', { Value: ref(stack.optimizer.queue) });
    template.hasOutput('DlqUrl', { Value: ref(stack.optimizer.deadLetterQueue) });
  });
});

describe('push: events, webhooks, dashboard', () => {
  const envOf = (fn: PipelineFunction) =>
    (resource(fn.fn).Properties.Environment as { Variables: Record<string, unknown> }).Variables;
  const policyText = (fn: PipelineFunction) =>
    JSON.stringify(
      Object.values(template.findResources('AWS::IAM::Policy'))
        .filter((p) => JSON.stringify(p.Properties.Roles).includes(logicalId(fn.role)))
        .map((p) => p.Properties.PolicyDocument),
    );

  it('creates an EventBridge bus, lets only the relay put events on it, and has an example rule', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    expect(envOf(stack.push.relay).EVENT_BUS_NAME).toEqual(ref(stack.push.bus));
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [ref(stack.push.relay.role)],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 'events:PutEvents', Effect: 'Allow', Resource: arn(stack.push.bus) }),
        ]),
      },
    });
    for (const fn of [
      stack.api.function,
      stack.optimizer.function,
      stack.reconciler.function,
      stack.push.notifier,
    ]) {
      expect(policyText(fn)).not.toContain('events:PutEvents');
    }
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: ref(stack.push.bus),
      EventPattern: { source: ['photo-intake'], 'detail-type': ['Image Failed'] },
      State: 'ENABLED',
    });
  });

  it('relays only inserted outbox rows from the table stream, retrying by halves, with a DLQ', () => {
    expect(resource(stack.storage.table).Properties.StreamSpecification).toEqual({
      StreamViewType: 'NEW_IMAGE',
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: ref(stack.push.relay.fn),
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack.storage.table), 'StreamArn'] },
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      DestinationConfig: { OnFailure: { Destination: arn(stack.push.relayDeadLetterQueue) } },
      FilterCriteria: {
        Filters: [
          {
            Pattern: JSON.stringify({
              eventName: ['INSERT'],
              dynamodb: { Keys: { pk: { S: [{ prefix: 'O#' }] } } },
            }),
          },
        ],
      },
    });
    // It deletes the rows it handed on, and may queue webhooks; nothing else on the table.
    const relayPolicy = policyText(stack.push.relay);
    expect(relayPolicy).toContain('dynamodb:BatchWriteItem');
    expect(relayPolicy).toContain('sqs:SendMessage');
    expect(relayPolicy).not.toMatch(/dynamodb:(PutItem|UpdateItem|Query)/);
  });

  it('delivers webhooks from a queue with partial failures, over 24 h of retries, then a DLQ', () => {
    const delays = String(envOf(stack.push.notifier).WEBHOOK_RETRY_DELAYS_SECONDS).split(',').map(Number);
    expect(delays.reduce((sum, d) => sum + d, 0)).toBeGreaterThanOrEqual(24 * 3600);
    expect(Math.max(...delays)).toBeLessThanOrEqual(12 * 3600);
    const queue = resource(stack.push.webhookQueue).Properties;
    expect(queue).toMatchObject({
      SqsManagedSseEnabled: true,
      RedrivePolicy: {
        deadLetterTargetArn: arn(stack.push.webhookDeadLetterQueue),
        maxReceiveCount: delays.length + 1,
      },
    });
    expect(Number(queue.MessageRetentionPeriod)).toBeGreaterThan(
      delays.reduce((sum, d) => sum + d, 0) + 3600,
    );
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: ref(stack.push.notifier.fn),
      EventSourceArn: arn(stack.push.webhookQueue),
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    // Visibility changes (the retry delay) come with the event source's consume grant.
    expect(policyText(stack.push.notifier)).toContain('sqs:ChangeMessageVisibility');
    expect(resource(stack.push.notifier.fn).Properties).toMatchObject({ Runtime: 'nodejs24.x', Timeout: 30 });
  });

  it('signs with a secret the stack creates, readable by the notifier alone', () => {
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { PasswordLength: 32, ExcludePunctuation: true, IncludeSpace: false },
    });
    expect(envOf(stack.push.notifier).WEBHOOK_SECRET_ARN).toEqual(ref(stack.push.secret));
    expect(policyText(stack.push.notifier)).toContain('secretsmanager:GetSecretValue');
    for (const fn of [
      stack.api.function,
      stack.optimizer.function,
      stack.reconciler.function,
      stack.push.relay,
    ]) {
      expect(policyText(fn)).not.toContain(logicalId(stack.push.secret));
    }
  });

  it('alarms on the notifier and relay failing and on any undelivered webhook', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map(
      (a) => a.Properties as Props,
    );
    const on = (queue: IConstruct) =>
      alarms.filter((a) => JSON.stringify(a.Dimensions ?? []).includes(logicalId(queue)));
    for (const queue of [stack.push.webhookDeadLetterQueue, stack.push.relayDeadLetterQueue]) {
      expect(on(queue)).toContainEqual(
        expect.objectContaining({
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Threshold: 1,
          AlarmActions: [ref(stack.alarms.topic)],
        }),
      );
    }
    for (const fn of [stack.push.notifier, stack.push.relay]) {
      const names = alarms
        .filter(
          (a) =>
            JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: 'FunctionName', Value: ref(fn.fn) }]),
        )
        .map((a) => a.MetricName)
        .sort();
      expect(names).toEqual(['Duration', 'Errors', 'Throttles']);
    }
  });

  it('has a dashboard of uploads, outcomes, latency, queues, functions and the API, named in the outputs', () => {
    const body = JSON.stringify(resource(stack.dashboard.dashboard).Properties.DashboardBody);
    for (const needle of [
      'PhotoIntake',
      'FilesRequested',
      'ImagesFinished',
      'outcome,code',
      'Images failed, by code',
      'ProcessingTime',
      'QueueLag',
      'p50',
      'p99',
      'ApproximateNumberOfMessagesVisible',
      'AWS/Lambda',
      'Errors',
      'Throttles',
      'Duration',
      '4xx',
      '5xx',
      'Latency',
    ]) {
      expect(body, needle).toContain(needle);
    }
    for (const queue of [
      stack.optimizer.deadLetterQueue,
      stack.push.webhookDeadLetterQueue,
      stack.push.relayDeadLetterQueue,
    ]) {
      expect(body).toContain(logicalId(queue));
    }
    for (const fn of [
      stack.api.function,
      stack.optimizer.function,
      stack.reconciler.function,
      stack.push.relay,
      stack.push.notifier,
    ]) {
      expect(body).toContain(logicalId(fn.fn));
    }
    const output = JSON.stringify(template.toJSON().Outputs.DashboardUrl.Value);
    expect(output).toContain('#dashboards:name=');
    expect(output).toContain(logicalId(stack.dashboard.dashboard));
  });
});

describe('cdk-nag', () => {
  it('reports no AwsSolutions finding, error or warning', () => {
    const report = new AwsSolutionsChecks().validateScope(app);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('acknowledges only named findings, each on one resource, each with its reason', () => {
    const acknowledged = app.node.findAll().flatMap((construct) =>
      construct.node.metadata
        .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((entry) =>
          Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({
            path: construct.node.path,
            id: id.replace(/^annotation::/i, ''),
            reason,
          })),
        ),
    );
    for (const { path, reason } of acknowledged) {
      // Never the whole app or stack: each acknowledgement sits on (or just above) one resource.
      expect(path.split('/').length).toBeGreaterThan(2);
      expect(reason.length).toBeGreaterThan(40);
    }
    expect(acknowledged.map((a) => a.id).sort()).toEqual(
      [
        // The public routes: GET /v1/health and GET /v1/openapi.json.
        'AwsSolutions-APIG4',
        'AwsSolutions-APIG4',
        'AwsSolutions-CFR1',
        // The webhook secret is rotated by hand with its receivers; the relay's stream-failure queue
        // is a dead-letter queue; dynamodb:ListStreams (stream event source) takes only *.
        'AwsSolutions-SMG4',
        'AwsSolutions-SQS3',
        'AwsSolutions-IAM5[Resource::*]',
        'AwsSolutions-CFR2',
        'AwsSolutions-CFR4',
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        `AwsSolutions-IAM5[Resource::<${logicalId(stack.storage.uploadBucket)}.Arn>/uploads/*]`,
        `AwsSolutions-IAM5[Resource::<${logicalId(stack.storage.uploadBucket)}.Arn>/uploads/*]`,
        `AwsSolutions-IAM5[Resource::<${logicalId(stack.storage.uploadBucket)}.Arn>/uploads/*]`,
        `AwsSolutions-IAM5[Resource::<${logicalId(stack.storage.variantsBucket)}.Arn>/*]`,
        `AwsSolutions-IAM5[Resource::<${logicalId(stack.storage.variantsBucket)}.Arn>/*]`,
      ].sort(),
    );
    // The reconciler's one: HeadObject on uploads/*, on its own role policy.
    expect(acknowledged.filter((a) => a.path.startsWith(stack.reconciler.node.path))).toEqual([
      {
        path: stack.reconciler.function.role.node.findChild('DefaultPolicy').node.path,
        id: `AwsSolutions-IAM5[Resource::<${logicalId(stack.storage.uploadBucket)}.Arn>/uploads/*]`,
        reason: expect.stringContaining('HeadObject'),
      },
    ]);
  });

  it('does not warn about placeholder JWT settings when they are given', () => {
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('placeholder'))).toEqual([]);
  });
});
