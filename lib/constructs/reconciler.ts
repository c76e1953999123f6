import { Duration, Token } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { checkReconcileSettings, type PipelineSettings } from '../settings.ts';
import { reconcilerEnvironment, toLambdaEnvironment } from './function-environment.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { Storage } from './storage.ts';

/** One run reads up to 500 dead letters and walks the open images of every shard. */
export const RECONCILER_TIMEOUT = Duration.minutes(5);
export const RECONCILER_MEMORY_MB = 512;
/** EventBridge retries a failed delivery (throttling, service errors) this often. */
export const SCHEDULE_RETRY_ATTEMPTS = 2;

export interface ReconcilerProps {
  settings: PipelineSettings;
  storage: Storage;
  /** The optimizer's work queue: the reconciler queues (again) the uploads that stopped moving. */
  queue: sqs.Queue;
  /** The work queue's dead-letter queue: the reconciler fails the images of its messages. */
  deadLetterQueue: sqs.Queue;
}

/**
 * The scheduled reconciler (`functions/reconciler/handler.ts`): every few minutes it fails the
 * images whose messages reached the dead-letter queue (the letters stay there for an operator),
 * queues again the images stuck in `uploaded`/`processing` (and fails those tried too often), queues
 * the uploads whose S3 event never arrived, and stops tracking pending uploads that expired unused.
 */
export class Reconciler extends Construct {
  readonly function: PipelineFunction;
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: ReconcilerProps) {
    super(scope, id);
    const { settings, storage, queue, deadLetterQueue } = props;

    const visibilityTimeout = (queue.node.defaultChild as sqs.CfnQueue).visibilityTimeout;
    if (visibilityTimeout === undefined || Token.isUnresolved(visibilityTimeout)) {
      throw new Error('The reconciler needs the work queue to have a fixed visibility timeout.');
    }
    checkReconcileSettings(settings, visibilityTimeout);

    this.function = new PipelineFunction(this, 'reconciler', {
      entry: 'functions/reconciler/handler.ts',
      description: 'the image pipeline reconciler (scheduled recovery of stuck and lost uploads)',
      memorySize: RECONCILER_MEMORY_MB,
      timeout: RECONCILER_TIMEOUT,
      architecture: settings.lambdaArchitecture,
      environment: toLambdaEnvironment(
        reconcilerEnvironment(
          settings,
          {
            tableName: storage.table.tableName,
            uploadBucket: storage.uploadBucket.bucketName,
            variantsBucket: storage.variantsBucket.bucketName,
            queueUrl: queue.queueUrl,
            dlqUrl: deadLetterQueue.queueUrl,
          },
          'photo-intake-reconciler',
        ),
      ),
    });

    const period = Duration.minutes(settings.reconcileSchedule);
    // A failed run is not retried by Lambda: the next scheduled run does the same work, and every
    // step is idempotent. An invocation that waited longer than a period is overtaken by the next.
    this.function.fn.configureAsyncInvoke({
      retryAttempts: 0,
      maxEventAge: Duration.minutes(Math.min(settings.reconcileSchedule, 360)),
    });
    this.rule = new events.Rule(this, 'schedule', {
      description: `Runs the image pipeline reconciler every ${
        settings.reconcileSchedule === 1 ? 'minute' : `${settings.reconcileSchedule} minutes`
      }`,
      schedule: events.Schedule.rate(period),
      targets: [
        new targets.LambdaFunction(this.function.fn, {
          retryAttempts: SCHEDULE_RETRY_ATTEMPTS,
          maxEventAge: period,
        }),
      ],
    });

    const role = this.function.role;
    // Conditional updates of images, the read-back after a lost condition, and the sparse index of
    // unfinished images (only that index). PutItem and UpdateItem also cover the batch-count
    // transactions (TransactWriteItems is authorized per item as PutItem/UpdateItem).
    storage.grantRecords(role, { table: ['GetItem', 'PutItem', 'UpdateItem'], queryIndexes: ['byOpenAge'] });
    // HeadObject of pending uploads (authorized as GetObject); a missing key must be a 404.
    storage.grantUploads(role, ['s3:GetObject'], {
      list: true,
      why: 'The reconciler checks (HeadObject) whether the upload of any pending image has landed; keys are generated per upload, so uploads/* is the narrowest key pattern.',
    });
    // Both queues use SSE-SQS (SQS-owned keys), so no KMS permission is involved.
    // SendMessageBatch is authorized as sqs:SendMessage.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }),
    );
    // Dead letters are only received (ReceiveMessage hides them for the run through its own
    // VisibilityTimeout), never deleted: they stay for the alarm and an operator.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['sqs:ReceiveMessage'], resources: [deadLetterQueue.queueArn] }),
    );
  }
}
