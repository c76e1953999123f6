import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';

const ROOT = join(import.meta.dirname, '..', '..');

/** The feature flags in cdk.json: the CLI passes them to the app, a bare `new App()` would not. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  return cdkJson.context ?? {};
}

/**
 * An App as `cdk synth` would build it, with extra context (settings) and its own output directory.
 * `bundle: false` skips esbuild and npm for tests that only look at settings.
 */
export function testApp(outdir: string, context: Record<string, unknown>, options = { bundle: true }): App {
  return new App({
    outdir,
    context: {
      ...cdkJsonContext(),
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...context,
    },
  });
}
