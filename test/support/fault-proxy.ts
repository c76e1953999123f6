import { createServer, type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface FaultRule {
  match: (req: ProxiedRequest) => boolean;
  /** How many matching requests fail; `Infinity` for all. */
  times: number;
  /**
   * Instead of answering: `request` resets the connection without forwarding (nothing stored);
   * `response` forwards, then resets the connection instead of passing the answer on (the request
   * took effect, the client never hears so); `delay` forwards after `delayMs`, unless the client
   * has gone by then.
   */
  drop?: 'request' | 'response';
  delayMs?: number;
  /** The answer (unused with `drop` or `delayMs`). */
  status?: number;
  contentType?: string;
  /** The answer's body, fixed or made from the request. */
  body?: string | ((req: ProxiedRequest) => string);
  /** Requests this rule failed so far. */
  hits: number;
}

/**
 * A failing endpoint: an HTTP proxy in front of a real local server that answers chosen requests
 * with the errors the real service sends (S3's XML errors, DynamoDB's JSON ones), and forwards the
 * rest untouched, Host header included, so SigV4 signatures still verify.
 */
export async function startFaultProxy(target: string) {
  const rules: FaultRule[] = [];
  const upstream = new URL(target);
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer);
    } catch {
      // The client gave up while sending: there is nobody to answer.
      return;
    }
    const body = Buffer.concat(chunks);
    const seen: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      body: body.toString('utf8'),
    };
    const rule = rules.find((candidate) => candidate.hits < candidate.times && candidate.match(seen));
    if (rule) rule.hits++;
    if (rule?.drop === 'request') {
      req.socket.destroy();
      return;
    }
    if (rule?.delayMs !== undefined) {
      await new Promise((resolve) => setTimeout(resolve, rule.delayMs));
      if (req.socket.destroyed) return;
    } else if (rule && rule.drop !== 'response') {
      const answer = typeof rule.body === 'function' ? rule.body(seen) : (rule.body ?? '');
      res.writeHead(rule.status ?? 500, { 'content-type': rule.contentType ?? 'text/plain' }).end(answer);
      return;
    }
    const resetAnswer = rule?.drop === 'response';
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        if (resetAnswer) {
          answer.resume();
          answer.once('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.writeHead(502).end());
    forward.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject(rule: Omit<FaultRule, 'hits'>): FaultRule {
      const added = { ...rule, hits: 0 };
      rules.push(added);
      return added;
    },
    clear() {
      rules.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type FaultProxy = Awaited<ReturnType<typeof startFaultProxy>>;

/** S3's answer to a request it failed on its side (the SDK retries it). */
export const s3InternalError = {
  status: 500,
  contentType: 'application/xml',
  body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>',
};

/** DynamoDB's throttling answer (the SDK retries it with a longer backoff). */
export const dynamoThrottled = {
  status: 400,
  contentType: 'application/x-amz-json-1.0',
  body: JSON.stringify({
    __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
    message: 'The level of configured provisioned throughput for the table was exceeded.',
  }),
};

export const dynamoInternalError = {
  status: 500,
  contentType: 'application/x-amz-json-1.0',
  body: JSON.stringify({
    __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
    message: 'Internal error',
  }),
};

/** Matches DynamoDB calls of one operation, optionally only those whose body mentions a string. */
export const dynamoCall =
  (operation: string, mentioning?: string) =>
  (req: ProxiedRequest): boolean =>
    req.headers['x-amz-target'] === `DynamoDB_20120810.${operation}` &&
    (mentioning === undefined || req.body.includes(mentioning));

/** Matches S3 GETs of one object (path-style URLs). */
export const s3Get =
  (bucket: string, key: string) =>
  (req: ProxiedRequest): boolean =>
    req.method === 'GET' && req.path.split('?')[0] === `/${bucket}/${key}`;
