/**
 * The `Access-Control-Allow-Origin` value for a browser request from `origin`, or undefined when
 * that origin may not call. `*` in the allowed list allows any origin (the local stack's default:
 * its servers listen on loopback only, and its URLs carry their own authorization).
 */
export function allowedOrigin(origin: string | undefined, allowed: readonly string[]): string | undefined {
  if (allowed.includes('*')) return '*';
  return origin !== undefined && allowed.includes(origin) ? origin : undefined;
}
