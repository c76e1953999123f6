import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_WEBHOOK_RETRY_DELAYS_SECONDS } from '../../functions/shared/config.ts';
import { DETAIL_TYPES, EVENT_SOURCE } from '../../functions/shared/push/sinks.ts';
import type { PipelineSettings } from '../settings.ts';
import { pushEnvironment, toLambdaEnvironment } from './function-environment.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { Storage } from './storage.ts';

/** One webhook attempt may take this long; the notifier's timeout leaves room for a batch of ten at once. */
export const WEBHOOK_TIMEOUT = Duration.seconds(5);
export const NOTIFIER_TIMEOUT = Duration.seconds(30);
export const RELAY_TIMEOUT = Duration.seconds(60);
/** Seconds after each failed attempt (Standard Webhooks' schedule); the queue allows one receive per attempt. */
export const WEBHOOK_RETRY_DELAYS_SECONDS: readonly number[] = DEFAULT_WEBHOOK_RETRY_DELAYS_SECONDS;
export const WEBHOOK_MAX_RECEIVE_COUNT = WEBHOOK_RETRY_DELAYS_SECONDS.length + 1;
/** Stream batches the relay retries before its pointer goes to the relay DLQ (each retry is whole). */
export const RELAY_RETRY_ATTEMPTS = 10;

export interface PushProps {
  settings: PipelineSettings;
  storage: Storage;
}

/**
 * What the pipeline tells the outside world. Every final move writes outbox rows (fate/moves.ts);
 * DynamoDB Streams hands the inserted ones (`pk` begins with `O#`) to the relay, which puts each
 * event on the stack's EventBridge bus, queues the webhook of each completed batch that has a
 * callbackUrl, records the metrics, and deletes the rows. The notifier delivers queued webhooks,
 * signed with the stack's secret, retrying for over 24 hours before the webhook DLQ.
 */
export class Push extends Construct {
  readonly bus: events.EventBus;
  readonly secret: secretsmanager.Secret;
  readonly webhookQueue: sqs.Queue;
  readonly webhookDeadLetterQueue: sqs.Queue;
  readonly relayDeadLetterQueue: sqs.Queue;
  readonly relay: PipelineFunction;
  readonly notifier: PipelineFunction;
  /** Example: every `Image Failed` event, into a log group operators can search. */
  readonly failedImagesRule: events.Rule;

  constructor(scope: Construct, id: string, props: PushProps) {
    super(scope, id);
    const { settings, storage } = props;

    this.bus = new events.EventBus(this, 'bus', {
      description: 'photo-intake: Image Ready, Image Failed, Batch Completed',
    });
    this.secret = new secretsmanager.Secret(this, 'webhook-secret', {
      description:
        'photo-intake webhook signing secret: receivers verify with "whsec_" followed by this value (32 base64 characters, 24 random bytes)',
      // Letters and digits only: 32 of them are valid base64 (24 bytes) for the Standard Webhooks key.
      generateSecretString: { passwordLength: 32, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.webhookDeadLetterQueue = new sqs.Queue(this, 'webhook-dead-letter-queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.webhookQueue = new sqs.Queue(this, 'webhook-queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Only a crashed attempt waits this long: failed ones set their own delay (the schedule).
      visibilityTimeout: Duration.seconds(NOTIFIER_TIMEOUT.toSeconds() * 6),
      // Longer than the whole schedule (27.6 h), with a day to spare.
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.webhookDeadLetterQueue, maxReceiveCount: WEBHOOK_MAX_RECEIVE_COUNT },
    });
    this.relayDeadLetterQueue = new sqs.Queue(this, 'relay-dead-letter-queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const resources = {
      tableName: storage.table.tableName,
      uploadBucket: storage.uploadBucket.bucketName,
      variantsBucket: storage.variantsBucket.bucketName,
    };
    this.relay = new PipelineFunction(this, 'relay', {
      entry: 'functions/relay/handler.ts',
      description: 'the outbox relay (DynamoDB Streams to EventBridge, the webhook queue and metrics)',
      memorySize: 256,
      timeout: RELAY_TIMEOUT,
      architecture: settings.lambdaArchitecture,
      environment: toLambdaEnvironment({
        ...pushEnvironment(resources, 'photo-intake-relay'),
        EVENT_BUS_NAME: this.bus.eventBusName,
        WEBHOOK_QUEUE_URL: this.webhookQueue.queueUrl,
      }),
    });
    this.relay.fn.addEventSource(
      new lambdaEvents.DynamoEventSource(storage.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(1),
        bisectBatchOnError: true,
        retryAttempts: RELAY_RETRY_ATTEMPTS,
        onFailure: new lambdaEvents.SqsDlq(this.relayDeadLetterQueue),
        // Only new outbox rows: status moves, batches and deletions never invoke the relay.
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('INSERT'),
            dynamodb: { Keys: { pk: { S: lambda.FilterRule.beginsWith('O#') } } },
          }),
        ],
      }),
    );
    // Handed-on rows are deleted (BatchWriteItem of deletes).
    storage.grantRecords(this.relay.role, { table: ['BatchWriteItem', 'DeleteItem'] });
    this.bus.grantPutEventsTo(this.relay.role);
    this.webhookQueue.grantSendMessages(this.relay.role);

    this.notifier = new PipelineFunction(this, 'notifier', {
      entry: 'functions/notifier/handler.ts',
      description: 'the webhook notifier (signed batch.completed POSTs with retries)',
      memorySize: 256,
      timeout: NOTIFIER_TIMEOUT,
      architecture: settings.lambdaArchitecture,
      environment: toLambdaEnvironment({
        ...pushEnvironment(resources, 'photo-intake-notifier'),
        WEBHOOK_QUEUE_URL: this.webhookQueue.queueUrl,
        WEBHOOK_SECRET_ARN: this.secret.secretArn,
        WEBHOOK_TIMEOUT_MS: String(WEBHOOK_TIMEOUT.toMilliseconds()),
        WEBHOOK_RETRY_DELAYS_SECONDS: WEBHOOK_RETRY_DELAYS_SECONDS.join(','),
      }),
    });
    this.notifier.fn.addEventSource(
      new lambdaEvents.SqsEventSource(this.webhookQueue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: 5,
      }),
    );
    // The event source's grant covers receive, delete and ChangeMessageVisibility (the retry delay).
    this.secret.grantRead(this.notifier.role);

    // The example rule: EventBridge writes to a log group named /aws/events/... that lets it. (CDK's
    // CloudWatchLogGroup target would set that policy through a custom resource and its own Lambda.)
    const failedImages = new logs.LogGroup(this, 'failed-images', {
      logGroupName: `/aws/events/${Stack.of(this).stackName}-failed-images`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    new logs.ResourcePolicy(this, 'failed-images-policy', {
      policyStatements: [
        new iam.PolicyStatement({
          principals: [
            new iam.ServicePrincipal('events.amazonaws.com'),
            new iam.ServicePrincipal('delivery.logs.amazonaws.com'),
          ],
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [failedImages.logGroupArn],
        }),
      ],
    });
    this.failedImagesRule = new events.Rule(this, 'failed-images-rule', {
      description: 'Example: every Image Failed event of the pipeline, kept in a log group',
      eventBus: this.bus,
      eventPattern: { source: [EVENT_SOURCE], detailType: [DETAIL_TYPES['image.failed']] },
    });
    this.failedImagesRule.addTarget({
      bind: () => ({ id: 'failed-images-log', arn: failedImages.logGroupArn }),
    });

    Validations.of(this.secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Rotating the webhook secret breaks every receiver until it is given the new value; it is rotated by hand, with the receivers (docs/deploy.md).',
    });
    Validations.of(this.relayDeadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself a dead-letter queue: the on-failure destination of the relay stream mapping (a stream destination, not a redrive policy, so cdk-nag does not see it).',
    });
    Validations.of(this.relay.role.node.findChild('DefaultPolicy')).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'dynamodb:ListStreams, which the DynamoDB Streams event source grants, has no resource-level permissions (it takes only *).',
    });
  }
}
