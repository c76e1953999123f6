import { readFile } from 'node:fs/promises';
import path from 'node:path';

const here = import.meta.dirname;

/**
 * The uploader page: `index.html` with the page script (the client library, `thumbhash` and
 * `app.ts`, bundled for browsers by esbuild) inlined, so it is one self-contained document that
 * can be served from anywhere.
 */
export async function buildUploaderPage(options: { minify?: boolean } = {}): Promise<string> {
  const { build } = await import('esbuild');
  const [template, bundle] = await Promise.all([
    readFile(path.join(here, 'index.html'), 'utf8'),
    build({
      entryPoints: [path.join(here, 'app.ts')],
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'browser',
      target: ['chrome110', 'firefox110', 'safari16'],
      minify: options.minify ?? true,
      legalComments: 'none',
    }),
  ]);
  const script = bundle.outputFiles[0]?.text ?? '';
  // `</script` cannot appear inside an inline script.
  return template.replace('/*APP*/', () => script.replace(/<\/script/gi, '<\\/script'));
}

let cached: Promise<string> | undefined;

/** Built once per process, on first use. */
export function uploaderPage(): Promise<string> {
  cached ??= buildUploaderPage().catch((error: unknown) => {
    cached = undefined;
    throw error;
  });
  return cached;
}
