/**
 * Node-only helpers for the client library: files on disk as upload sources, read and hashed as
 * streams (never whole in memory), and folders walked into file lists.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { UploadSource } from './source.ts';

/** Content types by extension; anything else is declared `application/octet-stream` (the bytes decide). */
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

export const typeForPath = (file: string) =>
  TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';

/** A file on disk as an upload source; its key (for resuming) is its absolute path, size and mtime. */
export async function fileSource(file: string): Promise<UploadSource> {
  const absolute = path.resolve(file);
  const info = await stat(absolute);
  return {
    name: path.basename(absolute),
    size: info.size,
    type: typeForPath(absolute),
    key: `${absolute}|${info.size}|${Math.trunc(info.mtimeMs)}`,
    stream: () => Readable.toWeb(createReadStream(absolute)) as ReadableStream<Uint8Array>,
    sha256: () => sha256File(absolute),
  };
}

/** SHA-256 of a file in hex, read as a stream. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * The files named, with folders walked (depth first, sorted by name; dot files and dot folders are
 * left out). Each file once, in the order given.
 */
export async function collectFiles(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const seen = new Set<string>();
  const add = (file: string) => {
    const key = path.resolve(file);
    if (!seen.has(key)) {
      seen.add(key);
      found.push(file);
    }
  };
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) add(full);
    }
  };
  for (const given of paths) {
    const info = await stat(given);
    if (info.isDirectory()) await walk(given);
    else add(given);
  }
  return found;
}
