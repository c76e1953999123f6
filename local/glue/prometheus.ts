import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import {
  type FinishedImage,
  METRIC_NAMES,
  type PipelineMetrics,
  type WebhookResult,
} from '../../functions/shared/observability.ts';

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
