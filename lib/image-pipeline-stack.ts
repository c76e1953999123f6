import { Annotations, CfnOutput, Stack, type StackProps, Tags, Validations } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ImageOptimizer } from './constructs/image-optimizer.ts';
import { PipelineAlarms } from './constructs/pipeline-alarms.ts';
import { Reconciler } from './constructs/reconciler.ts';
import { Storage } from './constructs/storage.ts';
import { UploadApi } from './constructs/upload-api.ts';
import { VariantDelivery } from './constructs/variant-delivery.ts';
import { checkProductionSettings, type PipelineSettings, usesPlaceholderJwt } from './settings.ts';

export interface ImagePipelineStackProps extends StackProps {
  /** The stage this stack is (`dev`, `prod`, ...), usually from `stageFromContext(app)`. */
  stage: string;
  /** The stage's validated settings, usually from `stageFromContext(app)`. */
  settings: PipelineSettings;
}

/**
 * The image upload pipeline: presigned uploads to S3, S3 notifications through SQS to the sharp
 * optimizer, variants in a second bucket, batch and image records in DynamoDB, an HTTP API with
 * JWT auth, a scheduled reconciler that recovers stuck and lost work, and alarms.
 */
export class ImagePipelineStack extends Stack {
  readonly storage: Storage;
  readonly optimizer: ImageOptimizer;
  readonly api: UploadApi;
  readonly reconciler: Reconciler;
  readonly alarms: PipelineAlarms;
  /** CloudFront in front of the variants, when the stage has a signing key. */
  readonly delivery: VariantDelivery | undefined;

  constructor(scope: Construct, id: string, props: ImagePipelineStackProps) {
    super(scope, id, props);
    const { stage, settings } = props;
    checkProductionSettings(stage, settings);
    Tags.of(this).add('photo-intake:stage', stage);
    const settingPath = (key: string) => `cdk.json "context" -> "stages" -> "${stage}" -> "${key}"`;
    if (usesPlaceholderJwt(settings)) {
      Annotations.of(this).addWarningV2(
        'image-pipeline:placeholder-jwt',
        `jwtIssuer/jwtAudience are not set for stage ${stage}: the API uses placeholders that accept no ` +
          `real token. Set ${settingPath('jwtIssuer')} and ${settingPath('jwtAudience')} before deploying.`,
      );
    }
    if (settings.alarmEmail === undefined && settings.production) {
      Annotations.of(this).addWarningV2(
        'image-pipeline:no-alarm-email',
        `!!! PRODUCTION STAGE ${stage} HAS NO alarmEmail: ALARMS WILL REACH NO ONE !!! ` +
          `Set ${settingPath('alarmEmail')} (or subscribe someone to the AlarmTopicArn output by hand).`,
      );
    }

    this.storage = new Storage(this, 'storage', {
      corsAllowedOrigins: settings.corsAllowedOrigins,
      tableDeletionProtection: settings.tableDeletionProtection,
      originalsTransition: {
        days: settings.originalsTransitionDays,
        storageClass: settings.originalsStorageClass,
      },
    });
    if (settings.cloudFrontPublicKey && settings.cloudFrontPrivateKeySecretArn) {
      this.delivery = new VariantDelivery(this, 'variant-delivery', {
        variantsBucket: this.storage.variantsBucket,
        accessLogBucket: this.storage.accessLogBucket,
        publicKeyPem: settings.cloudFrontPublicKey,
        privateKeySecretArn: settings.cloudFrontPrivateKeySecretArn,
        corsAllowedOrigins: settings.corsAllowedOrigins,
      });
    } else {
      this.delivery = undefined;
      Annotations.of(this).addWarningV2(
        'image-pipeline:no-cloudfront',
        `Stage ${stage} has no CloudFront signing key: variant URLs are presigned S3 GETs, which stop ` +
          "working when the API function's session credentials expire, possibly before their hour. Set " +
          `${settingPath('cloudFrontPublicKey')} and cloudFrontPrivateKeySecretArn (docs/deploy.md).`,
      );
    }
    this.optimizer = new ImageOptimizer(this, 'image-optimizer', { settings, storage: this.storage });
    this.api = new UploadApi(this, 'upload-api', {
      settings,
      storage: this.storage,
      delivery: this.delivery,
    });
    this.reconciler = new Reconciler(this, 'reconciler', {
      settings,
      storage: this.storage,
      queue: this.optimizer.queue,
      deadLetterQueue: this.optimizer.deadLetterQueue,
    });
    this.alarms = new PipelineAlarms(this, 'alarms', {
      optimizer: this.optimizer,
      api: this.api,
      reconciler: this.reconciler,
      table: this.storage.table,
      tableIndexes: this.storage.indexNames,
      alarmEmail: settings.alarmEmail,
    });

    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'Base URL of the HTTP API' });
    new CfnOutput(this, 'UploadBucketName', { value: this.storage.uploadBucket.bucketName });
    new CfnOutput(this, 'VariantsBucketName', { value: this.storage.variantsBucket.bucketName });
    if (this.delivery) {
      new CfnOutput(this, 'VariantsCdnUrl', {
        value: this.delivery.url,
        description: 'CloudFront distribution serving the variants (signed URLs only)',
      });
      new CfnOutput(this, 'DistributionId', { value: this.delivery.distribution.distributionId });
    }
    new CfnOutput(this, 'TableName', { value: this.storage.table.tableName });
    new CfnOutput(this, 'QueueUrl', { value: this.optimizer.queue.queueUrl });
    new CfnOutput(this, 'DlqUrl', { value: this.optimizer.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.alarms.topic.topicArn,
      description: 'Every alarm notifies this topic (alarm and OK); subscribe on-call here',
    });
    new CfnOutput(this, 'ReconcilerFunctionName', {
      value: this.reconciler.function.fn.functionName,
      description: 'Invoke it to reconcile now instead of waiting for the schedule',
    });

    this.suppressAcceptedFindings();
  }

  /** cdk-nag findings on resources CDK creates itself; the others sit next to their cause. */
  private suppressAcceptedFindings(): void {
    // The singleton Lambda behind `addEventNotification` (Custom::S3BucketNotifications).
    const notificationsHandler = this.node.tryFindChild(
      'BucketNotificationsHandler050a0587b7544547bf325f094a3db834',
    );
    const handlerRole = notificationsHandler?.node.tryFindChild('Role');
    if (handlerRole) {
      Validations.of(handlerRole).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          'CDK-owned custom resource that sets the upload bucket notification at deploy time; its role is not configurable.',
      });
    }
  }
}
