import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { CallbackPolicy } from '../shared/push/callback-url.ts';
import type { WebhookJob } from '../shared/push/webhooks.ts';

/** What one attempt came to: a status for any answer, an error for no answer (or a refused target). */
export type Attempt = { ok: boolean; status?: number; error?: string };

/** Bytes of the receiver's answer read at most (the answer itself is not used). */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * POSTs one webhook. The connection goes only to an address the policy accepts, checked as it is
 * resolved (no DNS rebinding between check and connect); no redirect is followed; the whole attempt,
 * answer included, is cut off after `timeoutMs`. Never throws: a failure is an `Attempt`.
 */
export function postWebhook(
  job: WebhookJob,
  headers: Record<string, string>,
  options: { policy: CallbackPolicy; timeoutMs: number },
): Promise<Attempt> {
  let url: URL;
  try {
    url = options.policy.checkTarget(job.url);
  } catch (error) {
    return Promise.resolve({ ok: false, error: (error as Error).message });
  }
  const body = Buffer.from(job.body);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Attempt>((resolve) => {
    let settled = false;
    const finish = (attempt: Attempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(attempt);
    };
    const req = send(
      url,
      {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(body.length),
          'user-agent': 'photo-intake-webhooks/1',
        },
        ...(options.policy.allowPrivate ? {} : { lookup: options.policy.lookup }),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) res.destroy();
        });
        res.on('close', () => finish({ ok: status >= 200 && status < 300, status }));
        res.on('error', () => finish({ ok: status >= 200 && status < 300, status }));
      },
    );
    const timer = setTimeout(() => {
      finish({ ok: false, error: `no answer within ${options.timeoutMs} ms` });
      req.destroy();
    }, options.timeoutMs);
    req.on('error', (error) => finish({ ok: false, error: error.message }));
    req.end(body);
  });
}
