import { Annotations, CfnOutput, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ImageOptimizer } from './constructs/image-optimizer.ts';
import { PipelineAlarms } from './constructs/pipeline-alarms.ts';
import { Reconciler } from './constructs/reconciler.ts';
import { Storage } from './constructs/storage.ts';
import { UploadApi } from './constructs/upload-api.ts';
import { type PipelineSettings, usesPlaceholderJwt } from './settings.ts';

export interface ImagePipelineStackProps extends StackProps {
  /** Validated settings, usually `settingsFromContext(app)`. */
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

  constructor(scope: Construct, id: string, props: ImagePipelineStackProps) {
    super(scope, id, props);
    const { settings } = props;
    if (usesPlaceholderJwt(settings)) {
      Annotations.of(this).addWarningV2(
        'image-pipeline:placeholder-jwt',
        'jwtIssuer/jwtAudience are not set in the CDK context: the API uses placeholders that accept no ' +
          'real token. Set both (-c jwtIssuer=https://... -c jwtAudience=...) before deploying.',
      );
    }

    this.storage = new Storage(this, 'storage', {
      corsAllowedOrigins: settings.corsAllowedOrigins,
      tableDeletionProtection: settings.tableDeletionProtection,
    });
    this.optimizer = new ImageOptimizer(this, 'image-optimizer', { settings, storage: this.storage });
    this.api = new UploadApi(this, 'upload-api', { settings, storage: this.storage });
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
      alarmEmail: settings.alarmEmail,
    });

    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'Base URL of the HTTP API' });
    new CfnOutput(this, 'UploadBucketName', { value: this.storage.uploadBucket.bucketName });
    new CfnOutput(this, 'VariantsBucketName', { value: this.storage.variantsBucket.bucketName });
    new CfnOutput(this, 'TableName', { value: this.storage.table.tableName });
    new CfnOutput(this, 'QueueUrl', { value: this.optimizer.queue.queueUrl });
    new CfnOutput(this, 'DlqUrl', { value: this.optimizer.deadLetterQueue.queueUrl });
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
