import type { BatchView } from '../contract/index.ts';
import type { ApiClient } from './api.ts';
import { isAbort, PhotoIntakeError } from './errors.ts';
import { sleep } from './retry.ts';

export interface WaitOptions {
  signal?: AbortSignal;
  /** Called with the whole batch (every page) each time something in it changed, and first. */
  onChange?: (batch: BatchView) => void;
  /** Called when a poll failed for a passing reason (offline, 5xx): waiting goes on. */
  onError?: (error: unknown) => void;
  /** First and longest pause between polls (default 500 ms and 5 s): it grows while nothing changes. */
  minIntervalMs?: number;
  maxIntervalMs?: number;
  /** Stops waiting early once this holds (e.g. the files one cares about are final). */
  until?: (batch: BatchView) => boolean;
  /** Gives up with `WaitTimeout` after this long (default: never). */
  timeoutMs?: number;
}

/**
 * Polls a batch until it is `complete` (or `until` holds), and resolves with it (all pages). Each poll sends the last
 * `ETag` (`304` while nothing changed, so an idle batch costs little); the pause between polls
 * grows while nothing changes and drops back when something does. Network trouble and `5xx` do not
 * end the wait.
 */
export async function waitForBatch(
  api: ApiClient,
  batchId: string,
  options: WaitOptions = {},
): Promise<BatchView> {
  const min = options.minIntervalMs ?? 500;
  const max = Math.max(min, options.maxIntervalMs ?? 5_000);
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  let etag: string | undefined;
  let last: BatchView | undefined;
  let interval = min;
  for (;;) {
    try {
      const answer = await api.getBatch(batchId, {
        ...(etag ? { etag } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (answer.notModified) {
        interval = Math.min(max, interval * 1.5);
      } else {
        etag = answer.etag;
        last = answer.view;
        options.onChange?.(last);
        if (last.complete || options.until?.(last)) return last;
        interval = min;
      }
    } catch (error) {
      if (isAbort(error, options.signal)) throw options.signal?.reason ?? error;
      if (!(error instanceof PhotoIntakeError && error.retryable)) throw error;
      options.onError?.(error);
      interval = Math.min(max, interval * 1.5);
    }
    if (Date.now() + interval > deadline) {
      throw new PhotoIntakeError(
        'WaitTimeout',
        `Batch ${batchId} was not complete within ${options.timeoutMs} ms${last ? ` (${JSON.stringify(last.counts)})` : ''}.`,
      );
    }
    await sleep(interval, options.signal);
  }
}
