import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Delivery {
  id: string;
  timestamp: string;
  body: string;
  /** Whether the reference library's verifier accepted the signature (and the timestamp). */
  verified: boolean;
  /** When it arrived (ms since the epoch). */
  at: number;
}

/** What the receiver does with the n-th request (0-based): answer a status, or never answer. */
export type Answer = number | 'hang';

export interface WebhookReceiver {
  url: string;
  deliveries: Delivery[];
  /** Requests that have not been answered (hanging ones). */
  open(): number;
  /** Resolves once `count` deliveries arrived, or rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs: number): Promise<Delivery[]>;
  close(): Promise<void>;
}

/**
 * A webhook receiver on loopback, as a user would write one: it verifies every request with the
 * `standardwebhooks` library and the stack's secret, records it, and answers as scripted.
 */
export async function startWebhookReceiver(
  secret: string,
  answer: (n: number) => Answer = () => 200,
): Promise<WebhookReceiver> {
  const verifier = new Webhook(secret);
  const deliveries: Delivery[] = [];
  const hanging = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': String(req.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
      };
      let verified = false;
      try {
        verifier.verify(body, headers);
        verified = true;
      } catch {
        verified = false;
      }
      const n = deliveries.length;
      deliveries.push({
        id: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        body,
        verified,
        at: Date.now(),
      });
      const what = answer(n);
      if (what === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      res.writeHead(what, { 'content-type': 'text/plain' }).end(String(what));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/photo-intake`,
    deliveries,
    open: () => hanging.size,
    async waitFor(count, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (deliveries.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`${deliveries.length} of ${count} webhook deliveries within ${timeoutMs} ms`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return deliveries;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
