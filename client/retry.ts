/** How a request that failed for a passing reason is tried again. */
export interface RetryPolicy {
  /** Tries after the first one. */
  retries: number;
  /** The first delay's ceiling; each try doubles it, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Where the jitter comes from (0 <= x < 1); tests pass a fixed one. */
  random: () => number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  retries: 8,
  baseDelayMs: 200,
  maxDelayMs: 15_000,
  random: Math.random,
};

/**
 * The delay before try `attempt` (1 for the first retry): "full jitter" exponential backoff, so
 * many clients that failed together do not come back together. A server's `Retry-After` wins when
 * it asks for longer.
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = Math.round(ceiling / 2 + (policy.random() * ceiling) / 2);
  return retryAfterMs === undefined ? jittered : Math.max(retryAfterMs, jittered);
}

/** `Retry-After` in milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Waits, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
