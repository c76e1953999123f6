import type {
  APIGatewayProxyEventV2WithJWTAuthorizer,
  APIGatewayProxyStructuredResultV2 as ApiResult,
} from 'aws-lambda';
import type { Limits } from '../../contract/index.ts';
import type { createAdapters } from '../shared/adapters.ts';
import type { Config } from '../shared/config.ts';
import { CallbackPolicy, CallbackUrlError } from '../shared/push/callback-url.ts';
import { RecordsWriteError } from '../shared/records/errors.ts';
import type { Quotas } from '../shared/records/ports.ts';
import { ApiError } from './errors.ts';
import { type CreateBatchDeps, createBatch } from './presign/create-batch.ts';
import {
  deleteImage,
  getBatch,
  getImage,
  renewUpload,
  type StatusDeps,
  type Tagged,
} from './status/queries.ts';
import { etagMatches } from './status/views.ts';
import { apiUrlSigner } from './url-signer.ts';

export interface ApiDeps {
  uploads: CreateBatchDeps;
  status: StatusDeps;
  /** What `GET /v1/limits` answers. */
  limits: Limits;
  quotas: Quotas;
  requestsPerMinute: number;
  logger: { error(message: string, ...extra: unknown[]): void };
}

export type ApiEvent = APIGatewayProxyEventV2WithJWTAuthorizer;

/**
 * The API's dependencies as the handler builds them: every setting of `config` lands here, and the
 * use cases read the adapters' clock. Tests build the API with this too, so a setting is proved
 * applied by the same wiring the deployed function runs.
 */
export function apiDepsFrom(
  config: Config,
  adapters: Pick<
    ReturnType<typeof createAdapters>,
    'records' | 'moves' | 'sharedFiles' | 'quotas' | 'objects' | 'signer' | 'now'
  >,
  observed: { logger: ApiDeps['logger']; metrics: CreateBatchDeps['metrics'] },
): ApiDeps {
  const { records, moves, sharedFiles, quotas, objects, now } = adapters;
  const signer = apiUrlSigner(config, adapters.signer);
  return {
    uploads: {
      batches: records,
      sharedFiles,
      signer,
      quotas,
      uploadBucket: config.uploadBucket,
      uploadPrefix: config.uploadPrefix,
      limits: config.limits,
      callbacks: new CallbackPolicy({ allowPrivate: config.push.allowPrivateCallbacks }),
      metrics: observed.metrics,
      now,
    },
    status: {
      batches: records,
      images: records,
      moves,
      sharedFiles,
      signer,
      objects,
      uploadBucket: config.uploadBucket,
      variantsBucket: config.variantsBucket,
      uploadUrlTtlSeconds: config.limits.uploadUrlTtlSeconds,
      maxOpenUploads: config.limits.maxOpenUploads,
      quotas,
      now,
    },
    limits: {
      maxFilesPerBatch: config.limits.maxFilesPerBatch,
      maxBytes: config.limits.maxBytes,
      acceptedTypes: [...config.limits.acceptedTypes],
      uploadUrlTtlSeconds: config.limits.uploadUrlTtlSeconds,
      variants: config.processing.variants.map(({ name, format, width, height }) => ({
        name,
        format,
        width,
        height,
      })),
    },
    quotas,
    requestsPerMinute: config.limits.requestsPerMinute,
    logger: observed.logger,
  };
}

const JSON_HEADERS = { 'content-type': 'application/json' };
/** Owner ids longer than this are refused: they become part of record keys. */
const MAX_OWNER_LENGTH = 256;
/** Built on first request, not at cold start. */
let openApi: string | undefined;
// Status reads may be cached only by the client, and must be revalidated (ETag) every time.
const REVALIDATE = { 'cache-control': 'private, no-cache' };

/** Routes one API Gateway (HTTP API, payload 2.0) request to its use case and maps the outcome. */
export async function handleApiRequest(deps: ApiDeps, event: ApiEvent): Promise<ApiResult> {
  try {
    return await route(deps, event);
  } catch (error) {
    return errorResult(deps, error);
  }
}

async function route(deps: ApiDeps, event: ApiEvent): Promise<ApiResult> {
  if (event.routeKey === 'GET /v1/health') return json(200, { status: 'ok' });
  if (event.routeKey === 'GET /v1/openapi.json') {
    // Imported on first request: the generator stays out of the cold start.
    openApi ??= JSON.stringify((await import('../../contract/openapi.ts')).openApiDocument());
    return {
      statusCode: 200,
      headers: { ...JSON_HEADERS, 'cache-control': 'public, max-age=300' },
      body: openApi,
    };
  }
  const owner = ownerOf(event);
  const admitted = admit(deps, owner);
  // Settled on every path below; marked handled so that a path that throws first leaves no rejection unheard.
  admitted.catch(() => undefined);
  const params = event.pathParameters ?? {};
  switch (event.routeKey) {
    case 'POST /v1/uploads':
      await admitted;
      return json(201, await createBatch(deps.uploads, owner, parseBody(event)));
    case 'GET /v1/images/{imageId}':
      return conditional(
        event,
        await whenAdmitted(admitted, getImage(deps.status, owner, params.imageId ?? '')),
      );
    case 'GET /v1/batches/{batchId}': {
      const query = event.queryStringParameters ?? {};
      const page = { limit: query.limit, cursor: query.cursor };
      return conditional(
        event,
        await whenAdmitted(admitted, getBatch(deps.status, owner, params.batchId ?? '', page)),
      );
    }
    case 'POST /v1/images/{imageId}/upload':
      await admitted;
      return json(200, await renewUpload(deps.status, owner, params.imageId ?? ''));
    case 'GET /v1/limits':
      await admitted;
      return json(200, deps.limits);
    case 'DELETE /v1/images/{imageId}':
      await admitted;
      await deleteImage(deps.status, owner, params.imageId ?? '');
      return { statusCode: 204 };
    default:
      await admitted;
      throw new ApiError('NotFound', `No route ${event.routeKey}.`);
  }
}

/** Counts the request against the owner's rate; rejects with `429 RateLimited` past it. */
async function admit(deps: ApiDeps, owner: string): Promise<void> {
  const rate = await deps.quotas.hit(owner, deps.requestsPerMinute, 60);
  if (!rate.allowed) {
    throw new ApiError('RateLimited', `Over ${deps.requestsPerMinute} requests a minute; slow down.`, {
      retryAfter: rate.retryAfterSeconds,
    });
  }
}

/**
 * A status read's first step (one GetItem: the record, its ETag) runs beside the rate check, so a
 * poll costs one round trip instead of two; what it renders (the page's query, the signed URLs) waits
 * for admission. A refused request answers `429` whatever the read found, as if it had not run.
 */
async function whenAdmitted<T>(admitted: Promise<void>, read: Promise<T>): Promise<T> {
  const [admission, result] = await Promise.allSettled([admitted, read]);
  if (admission.status === 'rejected') throw admission.reason;
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

/** The caller: the JWT's `sub`, as the authorizer verified it. */
function ownerOf(event: ApiEvent): string {
  const sub = event.requestContext.authorizer?.jwt?.claims?.sub;
  if (typeof sub !== 'string' || sub === '') {
    throw new ApiError('Unauthorized', 'Send Authorization: Bearer <token>.');
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
  if (sub.length > MAX_OWNER_LENGTH || /[\u0000-\u001f\u007f]/.test(sub)) {
    throw new ApiError(
      'Unauthorized',
      `The token's subject must be 1-${MAX_OWNER_LENGTH} printable characters.`,
    );
  }
  return sub;
}

function parseBody(event: ApiEvent): unknown {
  if (!event.body) throw new ApiError('InvalidRequest', 'The request needs a JSON body.');
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ApiError('InvalidRequest', 'The body is not valid JSON.', { cause });
  }
}

async function conditional<T>(event: ApiEvent, tagged: Tagged<T>): Promise<ApiResult> {
  const ifNoneMatch = event.headers?.['if-none-match'];
  if (ifNoneMatch && etagMatches(ifNoneMatch, tagged.etag)) {
    return { statusCode: 304, headers: { etag: tagged.etag, ...REVALIDATE } };
  }
  return json(200, await tagged.render(), { etag: tagged.etag, ...REVALIDATE });
}

function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): ApiResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** The one place errors become responses; a 5xx never carries internals. */
function errorResult(deps: ApiDeps, error: unknown): ApiResult {
  if (error instanceof ApiError) {
    const headers: Record<string, string> = {};
    if (error.retryAfter !== undefined) headers['retry-after'] = String(error.retryAfter);
    const body = {
      code: error.code,
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
    };
    return json(error.status, { error: body }, headers);
  }
  if (error instanceof CallbackUrlError) {
    const details = [{ path: 'callbackUrl', message: error.message }];
    return errorResult(deps, new ApiError('InvalidRequest', error.message, { details }));
  }
  if (error instanceof RecordsWriteError) {
    deps.logger.error('Records could not be written', error);
    const busy = new ApiError(
      'ServiceUnavailable',
      'The service is busy; nothing was created. Retry shortly.',
      {
        retryAfter: 2,
      },
    );
    return errorResult(deps, busy);
  }
  deps.logger.error('Unhandled error', error as Error);
  return json(500, {
    error: { code: 'InternalError', message: 'Something went wrong on our side. Try again.' },
  });
}
