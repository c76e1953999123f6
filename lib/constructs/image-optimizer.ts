import { Duration } from 'aws-cdk-lib';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { PipelineSettings } from '../settings.ts';
import { sharedEnvironment, toLambdaEnvironment, UPLOAD_PREFIX } from './function-environment.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { Storage } from './storage.ts';

/** Lambda's hard limit for one invocation; the processing deadline inside it is shorter. */
export const OPTIMIZER_TIMEOUT = Duration.seconds(90);
/** The optimizer gives up on one image after this and records `ProcessingTimeout`. */
export const PROCESSING_TIMEOUT = Duration.seconds(60);
/** sharp decodes whole images in memory; below this, large photos and HEIC fail. */
export const OPTIMIZER_MEMORY_MB = 2048;
/** Receives before a message moves to the dead-letter queue; the optimizer is told the same number. */
export const MAX_RECEIVE_COUNT = 5;

export interface ImageOptimizerProps {
  settings: PipelineSettings;
  storage: Storage;
}

/**
 * The work queue and its consumer: every object created under `uploads/` in the upload bucket is
 * announced on the queue, and the optimizer Lambda (sharp) writes the variants and the image's
 * final status. Messages that fail five times land in the dead-letter queue.
 */
export class ImageOptimizer extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly function: PipelineFunction;

  constructor(scope: Construct, id: string, props: ImageOptimizerProps) {
    super(scope, id);
    const { settings, storage } = props;

    this.deadLetterQueue = new sqs.Queue(this, 'dead-letter-queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(this, 'work-queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS's guidance for Lambda consumers: at least six times the function timeout, plus the
      // batching window, so a message is never redelivered while an invocation still holds it.
      visibilityTimeout: Duration.seconds(OPTIMIZER_TIMEOUT.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });

    // Only `uploads/` is announced, so nothing the pipeline writes elsewhere can trigger it again.
    storage.uploadBucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new s3n.SqsDestination(this.queue),
      { prefix: UPLOAD_PREFIX },
    );

    this.function = new PipelineFunction(this, 'optimizer', {
      entry: 'functions/optimizer/handler.ts',
      description: 'the image optimizer (SQS upload notifications to sharp variants)',
      memorySize: OPTIMIZER_MEMORY_MB,
      timeout: OPTIMIZER_TIMEOUT,
      nodeModules: ['sharp', 'heic-decode'],
      architecture: settings.lambdaArchitecture,
      environment: toLambdaEnvironment({
        ...sharedEnvironment(
          settings,
          {
            tableName: storage.table.tableName,
            uploadBucket: storage.uploadBucket.bucketName,
            variantsBucket: storage.variantsBucket.bucketName,
          },
          'photo-intake-optimizer',
        ),
        QUEUE_URL: this.queue.queueUrl,
        PROCESSING_TIMEOUT_MS: String(PROCESSING_TIMEOUT.toMilliseconds()),
        MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT),
        MALLOC_ARENA_MAX: '2',
      }),
    });

    this.function.fn.addEventSource(
      new lambdaEvents.SqsEventSource(this.queue, {
        // One image per invocation: Lambda scales out to `maxConcurrency` instead of one instance
        // working through a batch while others idle. No image then waits behind another in the
        // same invocation, so none needs the `uploaded` move (9 write units each), and the extra
        // invocations and receives cost less than those writes (docs/cost.md).
        batchSize: 1,
        reportBatchItemFailures: true,
        maxConcurrency: settings.optimizerMaxConcurrency,
      }),
    );

    const role = this.function.role;
    // Status transitions (conditional updates), the read-back when a condition fails, and the dedup
    // row a first ready image puts. PutItem and UpdateItem also cover the batch-count transactions
    // (TransactWriteItems is authorized per item as PutItem/UpdateItem).
    storage.grantRecords(role, { table: ['GetItem', 'PutItem', 'UpdateItem'] });
    // Uploads: read them, and remove them once processed (the original is kept with its variants)
    // or when they arrive after their image was settled or deleted.
    storage.grantUploads(role, ['s3:GetObject', 's3:DeleteObject'], {
      // A vanished original (deleted while queued) must read as 404, not 403.
      list: true,
      why: 'The optimizer reads and removes whichever upload a notification names; uploads/* is the narrowest key pattern.',
    });
    // Variants and kept originals: written, read back, and removed when the image was deleted while
    // it was processed or another attempt settled it (listing the image's folder).
    // PutObjectTagging: the kept original is written with its tag (the lifecycle rule's filter).
    storage.grantVariants(role, ['s3:GetObject', 's3:PutObject', 's3:PutObjectTagging', 's3:DeleteObject'], {
      list: true,
      why: "The optimizer writes each image's variants and kept original under a key made from its image id; the bucket holds nothing else.",
    });
  }
}
