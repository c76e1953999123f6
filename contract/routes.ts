/**
 * The HTTP API's routes, in API Gateway's route-key form. The CDK stack creates exactly these, the
 * local stack's gateway matches requests against the same list, and the OpenAPI document describes
 * each one (contract/openapi.ts).
 */
export interface RouteDefinition {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** Whether the route needs a bearer token (JWT authorizer when deployed). */
  authenticated: boolean;
}

export const ROUTES = [
  { method: 'POST', path: '/v1/uploads', authenticated: true },
  { method: 'GET', path: '/v1/images/{imageId}', authenticated: true },
  { method: 'DELETE', path: '/v1/images/{imageId}', authenticated: true },
  { method: 'POST', path: '/v1/images/{imageId}/upload', authenticated: true },
  { method: 'GET', path: '/v1/batches/{batchId}', authenticated: true },
  { method: 'GET', path: '/v1/limits', authenticated: true },
  { method: 'GET', path: '/v1/openapi.json', authenticated: false },
  { method: 'GET', path: '/v1/health', authenticated: false },
] as const satisfies readonly RouteDefinition[];

type Route = (typeof ROUTES)[number];
/** `METHOD /path` of every route, and nothing else. */
type KeyOf<R> = R extends RouteDefinition ? `${R['method']} ${R['path']}` : never;
export type RouteKey = KeyOf<Route>;

export const routeKey = <R extends RouteDefinition>(route: R) => `${route.method} ${route.path}` as KeyOf<R>;
