import sharp, { type Metadata } from 'sharp';
import { ImageError } from './errors.ts';
import { CONTENT_TYPES, type VariantFormat, type VariantSpec } from './variants.ts';

export interface ProcessLimits {
  /** Largest width x height accepted (per frame). */
  maxInputPixels: number;
  /** Most frames an animated image may have. */
  maxFrames: number;
  /** Time allowed for all variants of one image. */
  timeoutMs: number;
}

export interface ProcessedVariant {
  name: string;
  format: VariantFormat;
  contentType: string;
  width: number;
  height: number;
  size: number;
  body: Buffer;
}

export interface ProcessedImage {
  /** The detected input format (not the declared content type). */
  format: string;
  /** Of the upright image, after EXIF orientation. */
  width: number;
  height: number;
  variants: ProcessedVariant[];
}

/**
 * Turns an image's bytes into the configured variants: upright, sRGB, never enlarged, and with no
 * metadata. Throws `ImageError` for input that no retry can fix.
 */
export async function processImage(
  input: Buffer,
  specs: readonly VariantSpec[],
  limits: ProcessLimits,
): Promise<ProcessedImage> {
  const source = sharp(input, { limitInputPixels: limits.maxInputPixels, failOn: 'error' });
  let meta: Metadata;
  try {
    meta = await source.metadata();
  } catch (cause) {
    throw new ImageError('CorruptImage', 'The file could not be read as an image.', { cause });
  }
  const { width = 0, height = 0, autoOrient } = meta;
  const variants = await Promise.all(
    specs.map(async (spec) => {
      const pipeline = source
        .clone()
        .autoOrient()
        .resize({ width: spec.width, height: spec.height, fit: spec.fit, withoutEnlargement: true })
        .toColourspace('srgb');
      const encoded =
        spec.format === 'jpeg'
          ? pipeline.flatten({ background: '#ffffff' }).jpeg({ quality: spec.quality, mozjpeg: true })
          : spec.format === 'webp'
            ? pipeline.webp({ quality: spec.quality, effort: spec.effort ?? 4 })
            : pipeline.avif({ quality: spec.quality, effort: spec.effort ?? 4 });
      const { data, info } = await encoded.toBuffer({ resolveWithObject: true });
      return {
        name: spec.name,
        format: spec.format,
        contentType: CONTENT_TYPES[spec.format],
        width: info.width,
        height: info.height,
        size: data.length,
        body: data,
      };
    }),
  );
  return {
    format: meta.format ?? 'unknown',
    width: autoOrient?.width ?? width,
    height: autoOrient?.height ?? height,
    variants,
  };
}
