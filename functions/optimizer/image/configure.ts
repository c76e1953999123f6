import sharp from 'sharp';

/**
 * The only libvips loaders left enabled (each name covers its File, Buffer and Source variants).
 * Everything else — SVG (librsvg), PDF, ImageMagick, the native `.vips` format, matrix/CSV, FITS,
 * OpenEXR, raw camera files... — is blocked for the whole process, so even a sniffing mistake
 * cannot hand untrusted bytes to a parser we never meant to expose.
 */
export const ALLOWED_LOADERS: readonly string[] = [
  'VipsForeignLoadJpeg',
  'VipsForeignLoadPng',
  'VipsForeignLoadWebp',
  'VipsForeignLoadTiff',
  'VipsForeignLoadNsgif',
  'VipsForeignLoadHeif',
];

let loadersRestricted = false;

/** Blocks every libvips loader but {@link ALLOWED_LOADERS}; safe to call more than once. */
export function restrictLoaders(): void {
  if (loadersRestricted) return;
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: [...ALLOWED_LOADERS] });
  loadersRestricted = true;
}

export interface SharpSettings {
  /**
   * libvips worker threads per image. The optimizer already encodes an image's variants in
   * parallel (one libuv thread each), so one thread per pipeline keeps a 1-2 vCPU Lambda busy
   * without oversubscribing it; see docs/performance.md for the measurements. Default 1.
   */
  concurrency?: number;
  /**
   * libvips' operation cache. Off by default: every upload is a new image, so cached operations
   * are never reused and would only hold memory (up to 50 MB with sharp's defaults).
   */
  cache?: boolean;
}

export interface SharpConfiguration {
  concurrency: number;
  cache: boolean;
  allowedLoaders: readonly string[];
  versions: { sharp: string; vips: string };
}

/**
 * Sets sharp up for the optimizer, once per process (Lambda module scope, local stack start):
 * thread count, operation cache, and the loader allow-list. Returns what is now in effect.
 */
export function configureSharp(settings: SharpSettings = {}): SharpConfiguration {
  restrictLoaders();
  const cache = settings.cache ?? false;
  sharp.cache(cache);
  const concurrency = sharp.concurrency(settings.concurrency ?? 1);
  return {
    concurrency,
    cache,
    allowedLoaders: ALLOWED_LOADERS,
    versions: { sharp: sharp.versions.sharp ?? 'unknown', vips: sharp.versions.vips },
  };
}
