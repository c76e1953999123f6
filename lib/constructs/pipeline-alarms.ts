import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { ImageOptimizer } from './image-optimizer.ts';
import type { PipelineFunction } from './pipeline-function.ts';
import type { Reconciler } from './reconciler.ts';
import type { UploadApi } from './upload-api.ts';

/** An invocation this close to its function's timeout is one bad image (or page) from being killed. */
export const DURATION_ALARM_FRACTION = 0.8;
/** The API's p99 latency above this for 15 minutes is an incident (its function times out at 10 s). */
export const API_P99_LATENCY_THRESHOLD = Duration.seconds(3);
/** A dead letter the reconciler has not picked up within this long means it is not reading them. */
export const DEAD_LETTER_AGE_THRESHOLD = Duration.hours(1);

export interface PipelineAlarmsProps {
  optimizer: ImageOptimizer;
  api: UploadApi;
  reconciler: Reconciler;
  table: dynamodb.Table;
  /** Index names of the table, whose throttles count too. */
  tableIndexes: readonly string[];
  /** Subscribed to the alarm topic when given (the address must confirm the subscription). */
  alarmEmail?: string | undefined;
}

export interface WatchFunctionOptions {
  /** Sentence saying what it means for users when this function fails. */
  impact: string;
  /** Window in which one error alarms; 5 minutes unless the function runs less often. */
  errorWindow?: Duration;
}

/**
 * Alarms for what needs a human, each notifying one SNS topic when it fires and when it clears:
 * per function (errors, throttles, a run near its timeout), the work queue (dead letters, their
 * age, a backlog), the API (5xx, p99 latency) and the table (throttled requests).
 *
 * Another function (e.g. a webhook notifier) is one line: `alarms.watchFunction('notifier', fn, {...})`;
 * another dead-letter queue is `alarms.watchDeadLetterQueue(...)`.
 */
export class PipelineAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly #notify: actions.SnsAction;

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
    // Without this statement CloudWatch may not publish, and no alarm reaches anyone. Only this
    // account's alarms may (the confused-deputy guard).
    const { account, region, partition } = Stack.of(this);
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowThisAccountsAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': account },
          ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
        },
      }),
    );
    if (props.alarmEmail) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    this.#notify = new actions.SnsAction(this.topic);

    const { optimizer, api, reconciler } = props;
    const fiveMinutes = Duration.minutes(5);

    this.watchFunction('optimizer', optimizer.function, {
      impact:
        'Optimizer invocations failed as a whole (crash, out of memory or timeout): their images are retried.',
    });
    this.watchFunction('api', api.function, {
      impact: 'API invocations failed as a whole: clients got 5xx.',
    });
    this.watchFunction('reconciler', reconciler.function, {
      impact: 'A reconciler run failed: stuck or lost uploads are not being recovered until it succeeds.',
      errorWindow: Duration.minutes(15),
    });
    this.watchDeadLetterQueue('dead-letters', optimizer.deadLetterQueue, {
      impact: 'Upload notifications reached the dead-letter queue: images are stuck before ready/failed.',
    });

    this.#add('queue-backlog', {
      alarmDescription: 'The oldest upload notification has waited over 15 minutes: the optimizer is behind.',
      metric: optimizer.queue.metricApproximateAgeOfOldestMessage({
        period: fiveMinutes,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: Duration.minutes(15).toSeconds(),
    });
    this.#add('api-server-errors', {
      alarmDescription: 'The HTTP API answered 5xx at least 5 times in 5 minutes.',
      metric: api.httpApi.metricServerError({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM }),
      threshold: 5,
    });
    this.#add('api-latency', {
      alarmDescription: `The HTTP API's p99 latency stayed above ${API_P99_LATENCY_THRESHOLD.toSeconds()} s for 15 minutes.`,
      metric: api.httpApi.metricLatency({ period: fiveMinutes, statistic: cloudwatch.Stats.p(99) }),
      threshold: API_P99_LATENCY_THRESHOLD.toMilliseconds(),
      evaluationPeriods: 3,
    });

    // On demand, DynamoDB throttles a hot partition (a busy owner's rate counter, one huge batch)
    // or an index that cannot keep up; a throttled index write throttles the table write too.
    const throttles: Record<string, cloudwatch.IMetric> = {};
    const dynamoMetric = (metricName: string, index?: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/DynamoDB',
        metricName,
        dimensionsMap: {
          TableName: props.table.tableName,
          ...(index === undefined ? {} : { GlobalSecondaryIndexName: index }),
        },
        period: fiveMinutes,
        statistic: cloudwatch.Stats.SUM,
      });
    throttles.tableReads = dynamoMetric('ReadThrottleEvents');
    throttles.tableWrites = dynamoMetric('WriteThrottleEvents');
    props.tableIndexes.forEach((index, i) => {
      throttles[`index${i}Reads`] = dynamoMetric('ReadThrottleEvents', index);
      throttles[`index${i}Writes`] = dynamoMetric('WriteThrottleEvents', index);
    });
    this.#add('table-throttles', {
      alarmDescription:
        'DynamoDB throttled reads or writes of the records table or an index: requests slowed or failed (see docs/scale.md).',
      metric: new cloudwatch.MathExpression({
        expression: Object.keys(throttles)
          .map((name) => `FILL(${name}, 0)`)
          .join(' + '),
        usingMetrics: throttles,
        label: 'Throttled DynamoDB events',
        period: fiveMinutes,
      }),
      threshold: 1,
    });
  }

  /**
   * Watches one Lambda function: any error (in `errorWindow`), any throttled invocation, and any
   * invocation that ran over 80% of the function's timeout.
   */
  watchFunction(id: string, fn: PipelineFunction, options: WatchFunctionOptions): void {
    const window = options.errorWindow ?? Duration.minutes(5);
    this.#add(`${id}-errors`, {
      alarmDescription: options.impact,
      metric: fn.fn.metricErrors({ period: window, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
    });
    this.#add(`${id}-throttles`, {
      alarmDescription: `Lambda throttled invocations of the ${id} function: the account or its concurrency limit is exhausted (see docs/scale.md).`,
      metric: fn.fn.metricThrottles({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
    });
    const near = fn.timeout.toMilliseconds() * DURATION_ALARM_FRACTION;
    this.#add(`${id}-duration`, {
      alarmDescription: `An invocation of the ${id} function ran over ${Math.round(near / 1000)} s, ${DURATION_ALARM_FRACTION * 100}% of its ${fn.timeout.toSeconds()} s timeout.`,
      metric: fn.fn.metricDuration({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: near,
    });
  }

  /**
   * Watches a dead-letter queue: any message in it, and a message left unread for an hour. SQS
   * leaves a message received three times or more out of `ApproximateAgeOfOldestMessage`; the
   * reconciler receives every dead letter each run, so the age alarm says the reconciler is not
   * reading the queue (the count alarm stays in ALARM while letters remain).
   */
  watchDeadLetterQueue(id: string, queue: sqs.IQueue, options: { impact: string }): void {
    this.#add(id, {
      alarmDescription: options.impact,
      metric: queue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
    });
    this.#add(`${id}-age`, {
      alarmDescription: `A dead letter waited over ${DEAD_LETTER_AGE_THRESHOLD.toHours()} h unread: nothing is draining the dead-letter queue (is the reconciler running?). Letters are dropped after 14 days.`,
      metric: queue.metricApproximateAgeOfOldestMessage({
        period: Duration.minutes(5),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: DEAD_LETTER_AGE_THRESHOLD.toSeconds(),
    });
  }

  /** One alarm at or above its threshold, notifying the topic when it fires and when it clears. */
  #add(
    id: string,
    props: Pick<cloudwatch.AlarmProps, 'alarmDescription' | 'metric' | 'threshold'> & {
      evaluationPeriods?: number;
    },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
    });
    alarm.addAlarmAction(this.#notify);
    alarm.addOkAction(this.#notify);
    this.alarms.push(alarm);
    return alarm;
  }
}
