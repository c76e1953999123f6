import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRIC_NAMES, METRICS_NAMESPACE, METRICS_SERVICE } from '../../functions/shared/observability.ts';
import type { PipelineFunction } from './pipeline-function.ts';
import type { UploadApi } from './upload-api.ts';

export interface PipelineDashboardProps {
  api: UploadApi;
  /** Every function of the pipeline, by the name its widgets show. */
  functions: Record<string, PipelineFunction>;
  /** Work queues (depth), by name. */
  queues: Record<string, sqs.IQueue>;
  /** Dead-letter queues (depth), by name. */
  deadLetterQueues: Record<string, sqs.IQueue>;
}

const PERIOD = Duration.minutes(5);

/** One of the pipeline's own metrics (Powertools EMF, namespace `PhotoIntake`, dimension `service`). */
const pipelineMetric = (metricName: string, statistic: string, label: string) =>
  new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: METRICS_SERVICE },
    statistic,
    label,
    period: PERIOD,
  });

/**
 * The pipeline on one page: uploads requested, images ready and failed by code, processing time and
 * queue lag (p50/p99), queue and dead-letter depths, every function's errors, throttles and duration,
 * and the API's 4xx, 5xx and latency. Its URL is a stack output.
 */
export class PipelineDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  readonly url: string;

  constructor(scope: Construct, id: string, props: PipelineDashboardProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.dashboard = new cloudwatch.Dashboard(this, 'dashboard', {
      dashboardName: `${stack.stackName}-pipeline`,
      defaultInterval: Duration.hours(3),
    });
    this.url = `https://${stack.region}.console.aws.amazon.com/cloudwatch/home?region=${stack.region}#dashboards:name=${this.dashboard.dashboardName}`;

    const finished = (outcome: 'ready' | 'failed') =>
      new cloudwatch.MathExpression({
        // One line per failure code (the code is a dimension of ImagesFinished).
        expression: `SEARCH('{${METRICS_NAMESPACE},service,outcome,code} MetricName="${METRIC_NAMES.imagesFinished.emf}" outcome="${outcome}"', 'Sum', ${PERIOD.toSeconds()})`,
        label: outcome,
        period: PERIOD,
      });
    const percentiles = (metricName: string, what: string) =>
      ['p50', 'p99'].map((p) => pipelineMetric(metricName, p, `${what} ${p}`));
    const functions = Object.entries(props.functions);
    const byFunction = (metric: (fn: PipelineFunction, label: string) => cloudwatch.IMetric) =>
      functions.map(([name, fn]) => metric(fn, name));
    const depth = (queues: Record<string, sqs.IQueue>) =>
      Object.entries(queues).map(([name, queue]) =>
        queue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum', label: name }),
      );
    const graph = (title: string, left: cloudwatch.IMetric[], unit?: string) =>
      new cloudwatch.GraphWidget({
        title,
        left,
        width: 8,
        height: 6,
        ...(unit ? { leftYAxis: { label: unit, showUnits: false } } : {}),
      });

    this.dashboard.addWidgets(
      graph('Uploads requested (files)', [
        pipelineMetric(METRIC_NAMES.filesRequested.emf, 'Sum', 'files'),
        pipelineMetric(METRIC_NAMES.batchesCompleted.emf, 'Sum', 'batches completed'),
      ]),
      graph('Images ready', [finished('ready')]),
      graph('Images failed, by code', [finished('failed')]),
    );
    this.dashboard.addWidgets(
      graph('Processing time (s)', percentiles(METRIC_NAMES.processingSeconds.emf, 'processing'), 'seconds'),
      graph(
        'Queue lag: stored to processing (s)',
        percentiles(METRIC_NAMES.queueLagSeconds.emf, 'lag'),
        'seconds',
      ),
      graph('Queue depth', depth(props.queues)),
    );
    this.dashboard.addWidgets(
      graph('Dead-letter queue depth', depth(props.deadLetterQueues)),
      graph(
        'Lambda errors',
        byFunction((fn, label) => fn.fn.metricErrors({ period: PERIOD, statistic: 'Sum', label })),
      ),
      graph(
        'Lambda throttles',
        byFunction((fn, label) => fn.fn.metricThrottles({ period: PERIOD, statistic: 'Sum', label })),
      ),
    );
    const api = props.api.httpApi;
    this.dashboard.addWidgets(
      graph(
        'Lambda duration p99 (ms)',
        byFunction((fn, label) => fn.fn.metricDuration({ period: PERIOD, statistic: 'p99', label })),
      ),
      graph('API 4xx / 5xx', [
        api.metricClientError({ period: PERIOD, statistic: 'Sum', label: '4xx' }),
        api.metricServerError({ period: PERIOD, statistic: 'Sum', label: '5xx' }),
      ]),
      graph('API latency (ms)', [
        api.metricLatency({ period: PERIOD, statistic: 'p50', label: 'p50' }),
        api.metricLatency({ period: PERIOD, statistic: 'p99', label: 'p99' }),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Webhooks', [
        new cloudwatch.MathExpression({
          expression: `SEARCH('{${METRICS_NAMESPACE},service,result} MetricName="${METRIC_NAMES.webhookDeliveries.emf}"', 'Sum', ${PERIOD.toSeconds()})`,
          label: 'attempts',
          period: PERIOD,
        }),
      ]),
    );
  }
}
