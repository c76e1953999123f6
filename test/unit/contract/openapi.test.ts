import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../../contract/index.ts';
import { openApiDocument } from '../../../contract/openapi.ts';
import { assertConforms } from '../../support/openapi-conformance.ts';

describe('the OpenAPI document', () => {
  const document = openApiDocument();

  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(document as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe('3.1.0');
  });

  it('describes exactly the routes the service serves', () => {
    const documented = Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
      Object.keys(item ?? {}).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  });

  it('asks for a bearer token on every route but health and the document itself', () => {
    for (const route of ROUTES) {
      const item = (document.paths ?? {})[route.path] as Record<string, { security?: unknown[] }>;
      const operation = item[route.method.toLowerCase()];
      expect(operation?.security, `${route.method} ${route.path}`).toEqual(
        route.authenticated ? [{ bearer: [] }] : [],
      );
    }
  });

  it('refuses a response that does not conform (the check the e2e tests rely on)', () => {
    expect(() => assertConforms('GET', '/v1/health', 200, { status: 'ok' })).not.toThrow();
    expect(() => assertConforms('GET', '/v1/health', 200, { status: 'fine' })).toThrow(/does not conform/);
    expect(() => assertConforms('GET', '/v1/health', 418, undefined)).toThrow(/does not list/);
    expect(() =>
      assertConforms('GET', '/v1/batches/01ARZ3NDEKTSV4RRFFQ69G5FAV', 404, {
        error: { code: 'Nope', message: 'x' },
      }),
    ).toThrow(/does not conform/);
  });
});
