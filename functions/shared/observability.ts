import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/** CloudWatch namespace of every metric the pipeline emits (the contract's name). */
export const METRICS_NAMESPACE = 'PhotoIntake';
/** The `service` dimension Powertools puts on every metric; one for the whole pipeline. */
export const METRICS_SERVICE = 'photo-intake';

/** The metric names, in CloudWatch (EMF) and in Prometheus. The dashboard reads the same table. */
export const METRIC_NAMES = {
  filesRequested: { emf: 'FilesRequested', prometheus: 'photo_intake_files_requested_total' },
  imagesFinished: { emf: 'ImagesFinished', prometheus: 'photo_intake_images_finished_total' },
  batchesCompleted: { emf: 'BatchesCompleted', prometheus: 'photo_intake_batches_completed_total' },
  processingSeconds: { emf: 'ProcessingTime', prometheus: 'photo_intake_processing_seconds' },
  queueLagSeconds: { emf: 'QueueLag', prometheus: 'photo_intake_queue_lag_seconds' },
  webhookDeliveries: { emf: 'WebhookDeliveries', prometheus: 'photo_intake_webhook_deliveries_total' },
} as const;

export interface FinishedImage {
  outcome: 'ready' | 'failed';
  /** The failure code; `none` for a ready image. */
  code: string;
  /** Last processing attempt's start to the final state. */
  processingSeconds?: number | undefined;
  /** Object stored to processing started. */
  queueLagSeconds?: number | undefined;
}

/** What happened to one webhook attempt. */
export type WebhookResult = 'delivered' | 'retrying' | 'gave_up';

/** The pipeline's figures, whatever records them (EMF on AWS, prom-client on the local stack). */
export interface PipelineMetrics {
  filesRequested(count: number): void;
  imageFinished(image: FinishedImage): void;
  batchCompleted(): void;
  webhookAttempt(result: WebhookResult): void;
  /** The first invocation of a function in this process (a cold start). */
  coldStart(functionName: string): void;
  /** Writes what was recorded since the last flush (EMF: one log line); a no-op where metrics are scraped. */
  flush(): void;
}

/** Powertools Metrics: CloudWatch embedded metric format, written to the function's log. */
class EmfMetrics implements PipelineMetrics {
  readonly #metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: METRICS_SERVICE });

  filesRequested(count: number): void {
    this.#metrics.addMetric(METRIC_NAMES.filesRequested.emf, MetricUnit.Count, count);
  }

  imageFinished(image: FinishedImage): void {
    // Outcome and code are dimensions of this one metric only (a handful of values each).
    const single = this.#metrics.singleMetric();
    single.addDimensions({ outcome: image.outcome, code: image.code });
    single.addMetric(METRIC_NAMES.imagesFinished.emf, MetricUnit.Count, 1);
    if (image.processingSeconds !== undefined) {
      this.#metrics.addMetric(
        METRIC_NAMES.processingSeconds.emf,
        MetricUnit.Seconds,
        image.processingSeconds,
      );
    }
    if (image.queueLagSeconds !== undefined) {
      this.#metrics.addMetric(METRIC_NAMES.queueLagSeconds.emf, MetricUnit.Seconds, image.queueLagSeconds);
    }
  }

  batchCompleted(): void {
    this.#metrics.addMetric(METRIC_NAMES.batchesCompleted.emf, MetricUnit.Count, 1);
  }

  webhookAttempt(result: WebhookResult): void {
    const single = this.#metrics.singleMetric();
    single.addDimensions({ result });
    single.addMetric(METRIC_NAMES.webhookDeliveries.emf, MetricUnit.Count, 1);
  }

  coldStart(functionName: string): void {
    this.#metrics.captureColdStartMetric(functionName);
  }

  flush(): void {
    if (this.#metrics.hasStoredMetrics()) this.#metrics.publishStoredMetrics();
  }
}

export interface Observability {
  logger: Logger;
  metrics: PipelineMetrics;
  /** Wraps the function's handler: a cold-start metric once, and what it recorded written at each return. */
  instrument<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R>;
}

let metrics: PipelineMetrics | undefined;

/**
 * Where every function in this process records its metrics instead of EMF. The local stack records
 * into Prometheus (`local/glue/prometheus.ts`) and sets it before any handler loads, so that no
 * deployed bundle carries prom-client.
 */
export function recordMetricsWith(exporter: PipelineMetrics): void {
  metrics = exporter;
}

/**
 * The logger and metrics of one function, built once per process: every handler imports them from
 * here, so the namespace, the service and the exporter are decided in one place. The metrics are
 * shared by every function in the process (the local stack runs them all in one).
 */
export function observability(functionName: string): Observability {
  metrics ??= new EmfMetrics();
  const shared = metrics;
  let cold = true;
  return {
    logger: new Logger({ serviceName: `photo-intake-${functionName}` }),
    metrics: shared,
    instrument:
      (handler) =>
      async (...args) => {
        if (cold) shared.coldStart(functionName);
        cold = false;
        try {
          return await handler(...args);
        } finally {
          shared.flush();
        }
      },
  };
}
