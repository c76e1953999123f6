import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { ImagePipelineStack } from '../../lib/image-pipeline-stack.ts';
import { stackNameFor, stageFromContext } from '../../lib/settings.ts';

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

/**
 * The stack `bin/app.ts` builds for one stage whose cdk.json entry is `settings`: the same
 * `stageFromContext` path, so the tests exercise how settings reach the stack.
 */
export function stageStack(
  outdir: string,
  settings: Record<string, unknown>,
  options: { bundle?: boolean; stage?: string; context?: Record<string, unknown> } = {},
): { app: App; stack: ImagePipelineStack; stage: string } {
  const stageName = options.stage ?? 'test';
  const app = testApp(
    outdir,
    { stage: stageName, stages: { [stageName]: settings }, ...options.context },
    { bundle: options.bundle ?? true },
  );
  const { stage, settings: parsed } = stageFromContext(app);
  const stack = new ImagePipelineStack(app, stackNameFor(stage), { stage, settings: parsed });
  return { app, stack, stage };
}
