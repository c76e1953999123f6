import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { ImageOptimizer } from './image-optimizer.ts';
import type { Reconciler } from './reconciler.ts';
import type { UploadApi } from './upload-api.ts';

export interface PipelineAlarmsProps {
  optimizer: ImageOptimizer;
  api: UploadApi;
  reconciler: Reconciler;
  /** Subscribed to the alarm topic when given (the address must confirm the subscription). */
  alarmEmail?: string | undefined;
}

/**
 * Alarms for what needs a human: messages in the dead-letter queue (an image stuck short of a final
 * status), optimizer invocations that crash or time out, a growing backlog, API server errors, and
 * reconciler runs that fail.
 * All notify one SNS topic.
 */
export class PipelineAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: PipelineAlarmsProps) {
    super(scope, id);
    // A customer-managed key: CloudWatch cannot publish to a topic encrypted with alias/aws/sns,
    // whose key policy cannot be changed to let it use the key.
    const key = new kms.Key(this, 'topic-key', {
      description: 'Encrypts the image pipeline alarm topic',
      enableKeyRotation: true,
    });
    key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    this.topic = new sns.Topic(this, 'topic', { masterKey: key, enforceSSL: true });
    if (props.alarmEmail) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }

    const { optimizer, api, reconciler } = props;
    const fiveMinutes = Duration.minutes(5);
    this.alarms = [
      new cloudwatch.Alarm(this, 'dead-letters', {
        alarmDescription:
          'Upload notifications reached the dead-letter queue: images are stuck before ready/failed.',
        metric: optimizer.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'optimizer-errors', {
        alarmDescription: 'Optimizer invocations failed as a whole (crash, out of memory or timeout).',
        metric: optimizer.function.fn.metricErrors({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'queue-backlog', {
        alarmDescription:
          'The oldest upload notification has waited over 15 minutes: the optimizer is behind.',
        metric: optimizer.queue.metricApproximateAgeOfOldestMessage({
          period: fiveMinutes,
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        threshold: Duration.minutes(15).toSeconds(),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'api-server-errors', {
        alarmDescription: 'The HTTP API answered 5xx at least 5 times in 5 minutes.',
        metric: api.httpApi.metricServerError({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM }),
        threshold: 5,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'reconciler-errors', {
        alarmDescription:
          'A reconciler run failed: stuck or lost uploads are not being recovered until it succeeds.',
        metric: reconciler.function.fn.metricErrors({
          period: Duration.minutes(15),
          statistic: cloudwatch.Stats.SUM,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    const notify = new actions.SnsAction(this.topic);
    for (const alarm of this.alarms) alarm.addAlarmAction(notify);
  }
}
