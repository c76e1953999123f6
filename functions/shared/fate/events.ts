import type { Counts, ErrorInfo } from '../../../contract/index.ts';

/** An image reached `ready` or `failed`. */
export interface ImageFinishedEvent {
  /** Stable: the same event always carries the same id (receivers drop repeats by it). */
  id: string;
  type: 'image.ready' | 'image.failed';
  time: string;
  owner: string;
  batchId: string;
  imageId: string;
  name: string;
  /** When the object was known to have landed in storage, when known. */
  landedAt?: string;
  /** When its last processing attempt started, when known (`time - startedAt` is processing time). */
  startedAt?: string;
  width?: number;
  height?: number;
  format?: string;
  variants?: { name: string; format: string; width: number; height: number; size: number }[];
  error?: ErrorInfo;
}

/** Every item of a batch reached a final state. */
export interface BatchCompletedEvent {
  id: string;
  type: 'batch.completed';
  time: string;
  owner: string;
  batchId: string;
  total: number;
  counts: Counts;
  callbackUrl?: string;
}

export type PipelineEvent = ImageFinishedEvent | BatchCompletedEvent;

/**
 * Where the pipeline's events go once they are recorded (webhooks, EventBridge, metrics, a local
 * file). Delivery is at least once: `publish` may see an event again after a crash, with the same id.
 */
export interface EventSink {
  publish(events: readonly PipelineEvent[]): Promise<void>;
}

export const imageEventId = (imageId: string, status: 'ready' | 'failed') => `img_${imageId}_${status}`;
export const batchEventId = (batchId: string, completion: number) =>
  completion === 1 ? `batch_${batchId}_completed` : `batch_${batchId}_completed_${completion}`;
