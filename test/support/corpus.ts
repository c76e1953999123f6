import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * The shared corpus lives beside the project; it is never copied into it. `npm run mutate` runs the
 * tests from a copy of the project elsewhere, and names the corpus in PHOTO_INTAKE_CORPUS.
 */
export const corpusDir =
  process.env.PHOTO_INTAKE_CORPUS ?? path.resolve(projectRoot, '..', 'shared', 'corpus');

export const corpusFile = (relative: string) => path.join(corpusDir, relative);

export interface Expectation {
  expect: 'ready' | 'failed' | 'either';
  codes?: string[];
  note?: string;
}

export const expectations = (): Record<string, Expectation> =>
  JSON.parse(readFileSync(path.join(corpusDir, 'expected.json'), 'utf8')) as Record<string, Expectation>;

const TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.avif': 'image/avif',
  '.heic': 'image/heic',
  '.heif': 'image/heif',
};

/** The content type a client would declare for a file, going by its extension as browsers do. */
export const declaredType = (file: string) => TYPES[path.extname(file).toLowerCase()] ?? 'image/jpeg';
