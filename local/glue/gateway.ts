import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { uploaderPage } from '../../client/web/build.ts';
import { ROUTES, type RouteDefinition, routeKey } from '../../contract/routes.ts';
import { allowedOrigin } from '../cors.ts';

export interface GatewayOptions {
  port: number;
  /** Origins whose pages may call the API (`*`: any); see `CORS_ALLOWED_ORIGINS`. */
  corsAllowedOrigins: readonly string[];
  handler: (event: APIGatewayProxyEventV2WithJWTAuthorizer) => Promise<APIGatewayProxyStructuredResultV2>;
  /** `GET /metrics` (Prometheus text), beside the API; no authentication, loopback callers only. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  onError: (error: unknown) => void;
}

export interface Gateway {
  url: string;
  /** Stops accepting requests and waits for those in flight. */
  stop(): Promise<void>;
}

/** API Gateway's payload limit for HTTP APIs. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;
/** Node's default, as API Gateway also caps request headers: past it, `431`. */
const MAX_HEADER_BYTES = 16 * 1024;
/** How much of a request's path an error message repeats. */
const MAX_ECHOED_PATH = 200;

const CORS_HEADERS = {
  'access-control-allow-headers': 'authorization, content-type, if-none-match',
  'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
  'access-control-expose-headers': 'etag, retry-after',
  'access-control-max-age': '600',
};

/** CORS headers for a request: none when its origin may not call (the browser then blocks it). */
function corsHeaders(req: IncomingMessage, allowed: readonly string[]): Record<string, string> {
  const origin = allowedOrigin(req.headers.origin, allowed);
  if (origin === undefined) return {};
  return {
    ...CORS_HEADERS,
    'access-control-allow-origin': origin,
    ...(origin !== '*' && { vary: 'origin' }),
  };
}

interface CompiledRoute {
  route: RouteDefinition;
  pattern: RegExp;
  names: string[];
}

const compiled: CompiledRoute[] = ROUTES.map((route) => {
  const names: string[] = [];
  const source = route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
});

/**
 * Plays API Gateway (HTTP API, payload 2.0) on loopback: matches the stack's routes, plays the JWT
 * authorizer (on the local stack the bearer token itself is the owner id, put in the `sub` claim),
 * and passes each request to the API handler as an `APIGatewayProxyEventV2`.
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
    const cors = corsHeaders(req, options.corsAllowedOrigins);
    serve(options, req, res, cors).catch((error: unknown) => {
      options.onError(error);
      if (!res.headersSent) send(res, cors, errorResult(500, 'InternalError', 'The local gateway failed.'));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  // Requests Node refuses before they reach the handler (headers too large, a malformed request
  // line) get the contract's error shape, not Node's bare status line.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, message] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HeadersTooLarge', `Request headers are limited to ${MAX_HEADER_BYTES} bytes.`]
        : [400, 'InvalidRequest', 'The request is not valid HTTP.'];
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, stop: () => close(server) };
}

async function serve(
  options: GatewayOptions,
  req: IncomingMessage,
  res: ServerResponse,
  cors: Record<string, string>,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const method = req.method ?? 'GET';
  if (method === 'OPTIONS') {
    res.writeHead(204, cors).end();
    return;
  }
  if (options.metrics && url.pathname === '/metrics' && (method === 'GET' || method === 'HEAD')) {
    if (!isLoopback(req.socket.remoteAddress)) {
      send(res, cors, errorResult(403, 'Forbidden', '/metrics answers loopback callers only.'));
      return;
    }
    const { contentType, body } = await options.metrics();
    res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
    res.end(method === 'HEAD' ? undefined : body);
    return;
  }
  if (method === 'GET' && url.pathname === '/') {
    await serveUploaderPage(res);
    return;
  }
  const match = matchRoute(method, url.pathname);
  if (match === 'malformed') {
    refuse(res, cors, errorResult(400, 'InvalidRequest', 'The path has a malformed %-escape.'));
    return;
  }
  if (!match) {
    const shown = url.pathname.slice(0, MAX_ECHOED_PATH);
    refuse(res, cors, errorResult(404, 'NotFound', `No route ${method} ${shown}.`));
    return;
  }
  // The caller is authenticated before any of its body is read, as API Gateway's authorizer does.
  let sub: string | undefined;
  if (match.route.authenticated) {
    sub = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!sub) {
      refuse(
        res,
        cors,
        errorResult(
          401,
          'Unauthorized',
          'Send Authorization: Bearer <token>; locally the token is your owner id.',
        ),
      );
      return;
    }
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  const body = declared > MAX_BODY_BYTES ? undefined : await readBody(req);
  if (body === undefined) {
    refuse(res, cors, errorResult(413, 'PayloadTooLarge', `The body is over ${MAX_BODY_BYTES} bytes.`));
    return;
  }
  const event = toEvent(req, url, match, body, sub);
  send(res, cors, await options.handler(event));
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.replace(/^::ffff:/i, '');
  return v4.startsWith('127.') || address === '::1';
}

/** `GET /`: the web uploader (client/web), built from the client library on first request. */
async function serveUploaderPage(res: ServerResponse): Promise<void> {
  const html = await uploaderPage();
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }).end(html);
}

/** The route and its decoded path parameters; `malformed` when a parameter is not valid %-encoding. */
function matchRoute(method: string, path: string) {
  for (const candidate of compiled) {
    if (candidate.route.method !== method) continue;
    const found = candidate.pattern.exec(path);
    if (!found) continue;
    const pathParameters: Record<string, string> = {};
    for (const [i, name] of candidate.names.entries()) {
      try {
        pathParameters[name] = decodeURIComponent(found[i + 1] ?? '');
      } catch {
        return 'malformed' as const;
      }
    }
    return { route: candidate.route, pathParameters };
  }
  return undefined;
}

function toEvent(
  req: IncomingMessage,
  url: URL,
  match: Exclude<ReturnType<typeof matchRoute>, 'malformed' | undefined>,
  body: Buffer,
  sub: string | undefined,
): APIGatewayProxyEventV2WithJWTAuthorizer {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams)
    query[name] = name in query ? `${query[name]},${value}` : value;
  const now = new Date();
  const isText = body.length === 0 || /json|text/.test(headers['content-type'] ?? '');
  return {
    version: '2.0',
    routeKey: routeKey(match.route),
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    ...(url.search ? { queryStringParameters: query } : {}),
    ...(Object.keys(match.pathParameters).length > 0 ? { pathParameters: match.pathParameters } : {}),
    ...(body.length > 0 ? { body: isText ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: !isText,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: 'local',
      http: {
        method: match.route.method,
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: routeKey(match.route),
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
      authorizer: {
        principalId: '',
        integrationLatency: 0,
        jwt: { claims: sub ? { sub } : {}, scopes: [] },
      },
    },
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function errorResult(statusCode: number, code: string, message: string): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ error: { code, message } }),
  };
}

function send(
  res: ServerResponse,
  cors: Record<string, string>,
  result: APIGatewayProxyStructuredResultV2,
): void {
  const headers: Record<string, string> = { ...cors };
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name] = String(value);
  const body =
    result.body === undefined
      ? undefined
      : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  if (body && !('content-type' in headers)) headers['content-type'] = 'application/json';
  res.writeHead(result.statusCode ?? 200, headers);
  if (body) res.end(body);
  else res.end();
}

/** Answers without reading (the rest of) the body: the connection closes rather than drain it. */
function refuse(
  res: ServerResponse,
  cors: Record<string, string>,
  result: APIGatewayProxyStructuredResultV2,
): void {
  res.shouldKeepAlive = false;
  send(res, cors, result);
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
