import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, type CfnElement, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import nag from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, routeKey } from '../../contract/routes.ts';
import { TABLE_SCHEMA } from '../../functions/shared/records/schema.ts';
import { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import { settingsFromContext } from '../../lib/settings.ts';
import { testApp } from './cdk-app.ts';

const { AwsSolutionsChecks } = nag;

// Values that differ from every default, in the forms `cdk synth -c key=value` and cdk.json give.
const CONTEXT = {
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
  app = testApp(outdir, CONTEXT);
  stack = new ImagePipelineStack(app, 'ImagePipelineStack', { settings: settingsFromContext(app) });
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
    expect(Object.keys(buckets)).toHaveLength(3);
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

  it('logs server access of the upload and variants buckets to the access-log bucket', () => {
    const { uploadBucket, variantsBucket, accessLogBucket } = stack.storage;
    for (const bucket of [uploadBucket, variantsBucket]) {
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
    // The index that finds an image by id must return whole items.
    expect(table.Properties.GlobalSecondaryIndexes).toContainEqual(
      expect.objectContaining({ IndexName: 'byImage', Projection: { ProjectionType: 'ALL' } }),
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

  it('consumes the queue in small batches with partial failures and bounded concurrency', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: ref(stack.optimizer.function.fn),
      EventSourceArn: arn(stack.optimizer.queue),
      BatchSize: 5,
      MaximumBatchingWindowInSeconds: 1,
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
    template.resourceCountIs('AWS::Events::Rule', 1);
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
      NODE_OPTIONS: '--enable-source-maps',
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
  const objectArn = (bucket: IConstruct, pattern: string) => ({
    'Fn::Join': ['', [arn(bucket), `/${pattern}`]],
  });

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

  it('lets the optimizer read and retag uploads and write variants', () => {
    const { uploadBucket, variantsBucket } = stack.storage;
    expect(statementsOf(stack.optimizer.function.role)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Action: ['s3:GetObject', 's3:PutObjectTagging'],
          Resource: objectArn(uploadBucket, 'uploads/*'),
        }),
        expect.objectContaining({
          Action: expect.arrayContaining(['s3:PutObject']),
          Resource: objectArn(variantsBucket, '*'),
        }),
      ]),
    );
  });

  it('lets the reconciler send to the work queue and only receive from the dead-letter queue', () => {
    const sqsStatements = statementsOf(stack.reconciler.function.role).filter((s) =>
      [s.Action].flat().some((a) => String(a).startsWith('sqs:')),
    );
    expect(sqsStatements).toEqual([
      { Effect: 'Allow', Action: 'sqs:SendMessage', Resource: arn(stack.optimizer.queue) },
      {
        Effect: 'Allow',
        Action: ['sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage'],
        Resource: arn(stack.optimizer.deadLetterQueue),
      },
    ]);
    // No other role may receive from the dead-letter queue.
    const dlqReaders = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
      (p.Properties.PolicyDocument.Statement as Props[]).some(
        (s) =>
          JSON.stringify([s.Resource].flat()).includes(logicalId(stack.optimizer.deadLetterQueue)) &&
          [s.Action].flat().includes('sqs:ReceiveMessage'),
      ),
    );
    expect(dlqReaders.map((p) => p.Properties.Roles)).toEqual([[ref(stack.reconciler.function.role)]]);
  });

  it('lets the reconciler update records, query only byOpenAge and look at uploads', () => {
    const { table, uploadBucket } = stack.storage;
    const statements = statementsOf(stack.reconciler.function.role).filter(
      (s) => ![s.Action].flat().some((a) => /^(sqs|logs):/.test(String(a))),
    );
    expect(statements).toEqual([
      { Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], Resource: arn(table) },
      {
        Effect: 'Allow',
        Action: 'dynamodb:Query',
        Resource: { 'Fn::Join': ['', [arn(table), '/index/byOpenAge']] },
      },
      { Effect: 'Allow', Action: 's3:GetObject', Resource: objectArn(uploadBucket, 'uploads/*') },
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: arn(uploadBucket) },
    ]);
  });

  it('lets the API sign tagged PUTs only under uploads/', () => {
    const statements = statementsOf(stack.api.function.role);
    const puts = statements.filter((s) => [s.Action].flat().includes('s3:PutObject'));
    expect(puts).toHaveLength(1);
    expect(puts[0]).toMatchObject({
      Action: expect.arrayContaining(['s3:PutObject', 's3:PutObjectTagging']),
      Resource: objectArn(stack.storage.uploadBucket, 'uploads/*'),
    });
  });
});

describe('alarms and outputs', () => {
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
        'ApiUrl',
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
