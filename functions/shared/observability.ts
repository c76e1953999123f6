import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { getConfig } from './config.ts';

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

/** prom-client, in a registry of its own that the local stack serves at `GET /metrics`. */
export class PrometheusMetrics implements PipelineMetrics {
  readonly registry = new Registry();
  readonly #files = new Counter({
    name: METRIC_NAMES.filesRequested.prometheus,
    help: 'Files asked for in POST /v1/uploads (every entry, rejected ones included).',
    registers: [this.registry],
  });
  readonly #finished = new Counter({
    name: METRIC_NAMES.imagesFinished.prometheus,
    help: 'Images that reached a final state, by outcome (ready|failed) and failure code (none when ready).',
    labelNames: ['outcome', 'code'],
    registers: [this.registry],
  });
  readonly #batches = new Counter({
    name: METRIC_NAMES.batchesCompleted.prometheus,
    help: 'Batches whose every item reached a final state.',
    registers: [this.registry],
  });
  readonly #processing = new Histogram({
    name: METRIC_NAMES.processingSeconds.prometheus,
    help: "Seconds from an image's last processing start to its final state.",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly #lag = new Histogram({
    name: METRIC_NAMES.queueLagSeconds.prometheus,
    help: "Seconds from an object being stored to its image's processing start.",
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly #webhooks = new Counter({
    name: METRIC_NAMES.webhookDeliveries.prometheus,
    help: 'Webhook attempts, by result (delivered, retrying, gave_up).',
    labelNames: ['result'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'photo_intake_process_' });
  }

  filesRequested(count: number): void {
    this.#files.inc(count);
  }

  imageFinished(image: FinishedImage): void {
    this.#finished.inc({ outcome: image.outcome, code: image.code });
    if (image.processingSeconds !== undefined) this.#processing.observe(image.processingSeconds);
    if (image.queueLagSeconds !== undefined) this.#lag.observe(image.queueLagSeconds);
  }

  batchCompleted(): void {
    this.#batches.inc();
  }

  webhookAttempt(result: WebhookResult): void {
    this.#webhooks.inc({ result });
  }

  coldStart(): void {}

  flush(): void {}
}

export interface Observability {
  logger: Logger;
  metrics: PipelineMetrics;
  /** Wraps the function's handler: a cold-start metric once, and what it recorded written at each return. */
  instrument<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R>;
}

let metrics: PipelineMetrics | undefined;

/**
 * The logger and metrics of one function, built once per process: every handler imports them from
 * here, so the namespace, the service and the exporter are decided in one place. The metrics are
 * shared by every function in the process (the local stack runs them all in one).
 */
export function observability(functionName: string): Observability {
  metrics ??= getConfig().metricsExporter === 'prometheus' ? new PrometheusMetrics() : new EmfMetrics();
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

/** The local stack's registry, for `GET /metrics`; undefined unless metrics go to Prometheus. */
export function prometheusRegistry(): Registry | undefined {
  return metrics instanceof PrometheusMetrics ? metrics.registry : undefined;
}
