import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { ROUTES } from '../../contract/index.ts';
import { openApiDocument } from '../../contract/openapi.ts';

// ajv-formats is CommonJS; under Node's ESM its function arrives as the default export's `default`.
type AddFormats = (ajv: Ajv2020) => void;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ??
  (addFormatsModule as unknown as AddFormats);

const document = openApiDocument() as unknown as {
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
  >;
};
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(document, 'openapi.json');
const compiled = new Map<string, ValidateFunction>();

const templates = ROUTES.map((route) => ({
  route,
  pattern: new RegExp(`^${route.path.replace(/\{\w+\}/g, '[^/]+')}$`),
}));

/**
 * Throws unless a response is one the OpenAPI document describes: its status is documented for the
 * route, and its JSON body (if the document gives one) validates against the schema.
 */
export function assertConforms(method: string, url: string, status: number, body: unknown): void {
  const pathname = new URL(url, 'http://x').pathname;
  const found = templates.find((t) => t.route.method === method && t.pattern.test(pathname));
  if (!found) return; // Not an API route (e.g. a storage URL): nothing to check.
  const operation = document.paths[found.route.path]?.[method.toLowerCase()];
  const response = operation?.responses[String(status)];
  if (!response) {
    throw new Error(
      `${method} ${found.route.path} answered ${status}, which the OpenAPI document does not list`,
    );
  }
  const schema = response.content?.['application/json']?.schema;
  if (!schema) return;
  const key = `${method} ${found.route.path} ${status}`;
  let validate = compiled.get(key);
  if (!validate) {
    const pointed = JSON.parse(
      JSON.stringify(schema).replaceAll('"#/components/', '"openapi.json#/components/'),
    );
    validate = ajv.compile(pointed);
    compiled.set(key, validate);
  }
  if (!validate(body)) {
    throw new Error(
      `${method} ${pathname} ${status}: the body does not conform to the OpenAPI document: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`,
    );
  }
}
