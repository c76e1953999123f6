import sharp, { type Metadata } from 'sharp';
import { ImageError } from './errors.ts';
import type { SourceFormat } from './sniff.ts';

export interface ProcessLimits {
  /** Largest number of pixels accepted: width x height of one frame, and of all frames together. */
  maxInputPixels: number;
  /** Most frames an animated GIF or WebP may have. */
  maxFrames: number;
  /** Time allowed for all variants of one image. */
  timeoutMs: number;
}

/** What the file's header says, checked against the limits, before any pixel is decoded. */
export interface SourceHeader {
  format: SourceFormat;
  /** Of one frame, upright (after EXIF orientation). */
  width: number;
  height: number;
  /** Frames of an animated GIF/WebP; 1 for everything else (only the first page of a TIFF is used). */
  frames: number;
  animated: boolean;
  hasAlpha: boolean;
  /** HEVC-coded HEIF: sharp's prebuilt libvips cannot decode it. */
  hevc: boolean;
  /** 8-bit RGB(A) pixels: a profile can be applied after shrinking, via `rawToTiff`. */
  rgb8: boolean;
  icc: Buffer | undefined;
}

/** The `format` libvips reports for each sniffed format. */
const VIPS_FORMAT: Record<SourceFormat, Metadata['format']> = {
  jpeg: 'jpeg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
  tiff: 'tiff',
  avif: 'heif',
  heif: 'heif',
};

/** Maps an error from sharp about the input to an `ImageError`, or returns it unchanged if it is ours. */
export function inputError(cause: unknown, fallback: string): unknown {
  if (cause instanceof ImageError) return cause;
  if (!(cause instanceof Error)) return cause;
  const message = cause.message;
  // Resource exhaustion and programming errors are not the file's fault: let them be retried.
  if (/out of memory|cannot allocate|ENOMEM|EMFILE|Expected .* for .* but received/i.test(message))
    return cause;
  if (message.includes('exceeds pixel limit')) {
    return new ImageError('TooManyPixels', 'The image has more pixels than allowed.', { cause });
  }
  if (message.includes('unsupported image format')) {
    return new ImageError('UnsupportedFormat', 'The file is not an image format we accept.', { cause });
  }
  if (message.startsWith('timeout:')) {
    return new ImageError('ProcessingTimeout', 'The image took too long to process.', { cause });
  }
  return new ImageError('CorruptImage', fallback, { cause });
}

/**
 * Reads the header with libvips (no pixel data is decoded) and enforces the pixel and frame limits,
 * so pixel bombs and frame bombs are refused in milliseconds.
 */
export async function readHeader(
  input: Buffer,
  sniffed: SourceFormat,
  limits: ProcessLimits,
): Promise<SourceHeader> {
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: limits.maxInputPixels }).metadata();
  } catch (cause) {
    throw inputError(cause, 'The image header could not be read.');
  }
  if (meta.format !== VIPS_FORMAT[sniffed]) {
    throw new ImageError('UnsupportedFormat', `The file looks like ${sniffed} but does not parse as one.`);
  }
  const pages = meta.pages ?? 1;
  if ((sniffed === 'heif' || sniffed === 'avif') && pages > 1) {
    // Collections (bursts, tiles exposed as separate images, alternates) have no single picture we
    // could stand behind; a phone photo is one top-level image with hidden tiles.
    throw new ImageError(
      'UnsupportedFormat',
      `HEIF/AVIF files holding ${pages} separate images are not accepted.`,
    );
  }
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  if (width < 1 || height < 1) throw new ImageError('CorruptImage', 'The image has no pixels.');
  const perFrame = width * height;
  if (perFrame > limits.maxInputPixels) {
    throw new ImageError(
      'TooManyPixels',
      `The image is ${width}x${height} pixels, over the limit of ${limits.maxInputPixels}.`,
    );
  }
  const animated = (sniffed === 'gif' || sniffed === 'webp') && pages > 1;
  const frames = animated ? pages : 1;
  if (frames > limits.maxFrames) {
    throw new ImageError(
      'TooManyFrames',
      `The animation has ${frames} frames, over the limit of ${limits.maxFrames}.`,
    );
  }
  if (perFrame * frames > limits.maxInputPixels) {
    throw new ImageError(
      'TooManyPixels',
      `The animation has ${frames} frames of ${width}x${height} pixels, over the limit of ${limits.maxInputPixels} in all.`,
    );
  }
  const hevc = meta.compression === 'hevc';
  const format: SourceFormat =
    meta.compression === 'av1' ? 'avif' : meta.compression === 'hevc' ? 'heif' : sniffed;
  const rgb8 =
    hevc || (meta.space === 'srgb' && meta.depth === 'uchar' && (meta.channels === 3 || meta.channels === 4));
  const icc = meta.icc && meta.icc.length > 0 ? meta.icc : undefined;
  return { format, width, height, frames, animated, hasAlpha: meta.hasAlpha === true, hevc, rgb8, icc };
}
