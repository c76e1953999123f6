import type { SharpOptions } from 'sharp';
import { ImageError } from './errors.ts';

/** Pixels ready for sharp: the bytes and the options that describe them. */
export interface DecodedSource {
  input: Buffer;
  options: SharpOptions;
}

/**
 * Decodes the primary image of an HEVC-coded HEIF (iPhone HEIC, Android HEIF) with libheif compiled
 * to WebAssembly, because sharp's prebuilt libvips carries no HEVC decoder. libheif applies the
 * container's `irot`/`imir`/`clap` transforms, so the pixels come out upright; the EXIF orientation
 * of a HEIF is informative only and must not be applied again.
 *
 * Returns raw RGBA in the file's colour space (the caller applies the profile). The dimensions are
 * checked against `maxInputPixels` from the container before any pixel is decoded. The decode itself
 * is synchronous WebAssembly (about 0.1 s per megapixel here): it blocks the event loop and cannot be
 * interrupted, so the caller's deadline is checked as soon as it returns.
 */
export async function decodeHevcHeif(input: Buffer, maxInputPixels: number): Promise<DecodedSource> {
  const { default: heicDecode } = await import('heic-decode');
  let images: Awaited<ReturnType<typeof heicDecode.all>>;
  try {
    images = await heicDecode.all({ buffer: input });
  } catch (cause) {
    throw new ImageError('CorruptImage', 'The HEIF container could not be read.', { cause });
  }
  try {
    const [primary] = images;
    if (!primary) throw new ImageError('CorruptImage', 'The HEIF file holds no image.');
    if (primary.width * primary.height > maxInputPixels) {
      throw new ImageError(
        'TooManyPixels',
        `The image is ${primary.width}x${primary.height} pixels, over the limit of ${maxInputPixels}.`,
      );
    }
    let decoded: Awaited<ReturnType<typeof primary.decode>>;
    try {
      decoded = await primary.decode();
    } catch (cause) {
      throw new ImageError('CorruptImage', 'The HEIF image could not be decoded.', { cause });
    }
    const { width, height, data } = decoded;
    if (data.byteLength !== width * height * 4) {
      throw new ImageError('CorruptImage', 'The HEIF decoder returned an unexpected pixel buffer.');
    }
    // The pixels are in the file's colour space: the caller converts them with the profile from the
    // header once they are shrunk.
    return {
      input: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      options: { raw: { width, height, channels: 4 } },
    };
  } finally {
    images.dispose();
  }
}
