/**
 * The HTTP API's routes, in API Gateway's route-key form. The CDK stack creates exactly these, and
 * the local stack's gateway matches requests against the same list.
 */
export interface RouteDefinition {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** Whether the route needs a bearer token (JWT authorizer when deployed). */
  authenticated: boolean;
}

export const ROUTES: readonly RouteDefinition[] = [
  { method: 'POST', path: '/v1/uploads', authenticated: true },
  { method: 'GET', path: '/v1/images/{imageId}', authenticated: true },
  { method: 'DELETE', path: '/v1/images/{imageId}', authenticated: true },
  { method: 'GET', path: '/v1/batches/{batchId}', authenticated: true },
  { method: 'GET', path: '/v1/health', authenticated: false },
];

export const routeKey = (route: RouteDefinition) => `${route.method} ${route.path}`;
