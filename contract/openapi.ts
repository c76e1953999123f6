import * as z from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject } from 'zod-openapi';
import { ROUTES, type RouteKey, routeKey } from './routes.ts';
import {
  BatchViewSchema,
  CreatedBatchSchema,
  ErrorBodySchema,
  HealthSchema,
  ImageViewSchema,
  LimitsSchema,
  PageQuerySchema,
  UploadRequestSchema,
  UploadUrlSchema,
} from './schemas.ts';

const json = (schema: z.ZodType) => ({ content: { 'application/json': { schema } } });
const error = (description: string) => ({ description, ...json(ErrorBodySchema) });
const etag = z.object({ ETag: z.string().meta({ description: 'Weak tag of this representation' }) });
const retryAfter = z.object({ 'Retry-After': z.string().meta({ description: 'Seconds to wait' }) });
/** A read that carries an ETag and answers 304 to a matching If-None-Match. */
const taggedRead = (description: string, schema: z.ZodType, missing: string) => ({
  '200': { description, headers: etag, ...json(schema) },
  '304': { description: 'Unchanged since the If-None-Match tag', headers: etag },
  '404': error(`No such ${missing} for this owner (NotFound)`),
});
const imageId = z.object({ imageId: z.string() });
const batchId = z.object({ batchId: z.string() });

/** Answers every authenticated route can give besides its own. */
const COMMON_ERRORS = {
  '400': error('A malformed request (InvalidRequest)'),
  '401': error('Missing or invalid bearer token (Unauthorized)'),
  '429': { ...error('Over the request rate or the quota (RateLimited, QuotaExceeded)'), headers: retryAfter },
  '431': error('Request headers too large (HeadersTooLarge)'),
  '500': error('Something failed on the service side (InternalError); the body carries no internals'),
  '503': { ...error('Busy; nothing was changed (ServiceUnavailable)'), headers: retryAfter },
};

/** One operation per route; a route missing here is a compile error. */
const OPERATIONS = {
  'POST /v1/uploads': {
    operationId: 'createBatch',
    summary: 'Start a batch: one presigned upload per file',
    requestBody: json(UploadRequestSchema),
    responses: {
      '201': { description: 'The batch, one item per file in request order', ...json(CreatedBatchSchema) },
      '413': error('Body too large (PayloadTooLarge)'),
    },
  },
  'GET /v1/images/{imageId}': {
    operationId: 'getImage',
    summary: 'One image: status, facts and variant URLs',
    requestParams: { path: imageId },
    responses: taggedRead('The image', ImageViewSchema, 'image'),
  },
  'DELETE /v1/images/{imageId}': {
    operationId: 'deleteImage',
    summary: 'Delete the original, every variant and the record',
    requestParams: { path: imageId },
    responses: {
      '204': { description: 'Deleted' },
      '404': error('No such image for this owner (NotFound)'),
    },
  },
  'POST /v1/images/{imageId}/upload': {
    operationId: 'renewUpload',
    summary: 'A fresh upload URL for an image still waiting for its bytes',
    requestParams: { path: imageId },
    responses: {
      '200': { description: 'The new URL', ...json(UploadUrlSchema) },
      '404': error('No such image for this owner (NotFound)'),
      '409': error('The bytes have landed already (AlreadyUploaded)'),
    },
  },
  'GET /v1/batches/{batchId}': {
    operationId: 'getBatch',
    summary: 'A batch: counts, completeness and one page of items',
    requestParams: { path: batchId, query: PageQuerySchema },
    responses: taggedRead('One page of the batch', BatchViewSchema, 'batch'),
  },
  'GET /v1/limits': {
    operationId: 'getLimits',
    summary: 'The limits in force for this owner',
    responses: { '200': { description: 'The limits', ...json(LimitsSchema) } },
  },
  'GET /v1/openapi.json': {
    operationId: 'getOpenApi',
    summary: 'This document',
    responses: {
      '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: z.looseObject({}) } } },
    },
  },
  'GET /v1/health': {
    operationId: 'health',
    summary: 'Liveness',
    responses: { '200': { description: 'Up', ...json(HealthSchema) } },
  },
} satisfies Record<RouteKey, ZodOpenApiOperationObject>;

/** The OpenAPI 3.1 document of every route, built from the schemas the service validates with. */
export function openApiDocument(serverUrl?: string) {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of ROUTES) {
    const operation: ZodOpenApiOperationObject = OPERATIONS[routeKey(route)];
    const method = route.method.toLowerCase() as 'get' | 'post' | 'delete';
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, ZodOpenApiOperationObject>)[method] = {
      ...operation,
      ...(route.authenticated
        ? { security: [{ bearer: [] }], responses: { ...COMMON_ERRORS, ...operation.responses } }
        : { security: [] }),
    };
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'photo-intake',
      version: '2',
      description: 'Batch presigned photo uploads, variants and status. See CONTRACT.md.',
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    security: [{ bearer: [] }],
    paths,
  });
}
