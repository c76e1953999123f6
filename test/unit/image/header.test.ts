import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ImageError } from '../../../functions/optimizer/image/errors.ts';
import { inputError, readHeader } from '../../../functions/optimizer/image/header.ts';
import type { SourceFormat } from '../../../functions/optimizer/image/sniff.ts';
import { corpusFile } from '../../support/corpus.ts';

/** Header checks on tiny generated images: no pixels decoded, a few milliseconds each. */
const LIMITS = { maxInputPixels: 1_000, maxFrames: 5, timeoutMs: 1_000 };
const solid = (width: number, height: number, channels: 3 | 4 = 3) =>
  sharp({ create: { width, height, channels, background: { r: 10, g: 20, b: 30, alpha: 0.5 } } });
/** An animated GIF (or WebP) of `frames` frames of `size` x `size`. */
const animated = (frames: number, size: number, format: 'gif' | 'webp' = 'gif') => {
  const strip = Buffer.alloc(size * size * frames * 3);
  for (let f = 0; f < frames; f++) strip.fill(f * 40, f * size * size * 3, (f + 1) * size * size * 3);
  const delay = Array.from({ length: frames }, () => 100);
  const image = sharp(strip, { raw: { width: size, height: size * frames, channels: 3, pageHeight: size } });
  return (format === 'gif' ? image.gif({ delay }) : image.webp({ delay })).toBuffer();
};

const codeOf = async (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (error: unknown) => (error instanceof ImageError ? error.code : `not an ImageError: ${String(error)}`),
  );

describe('readHeader enforces the limits on untrusted input', () => {
  it('takes exactly maxInputPixels, and refuses one pixel more', async () => {
    const png = await solid(25, 40).png().toBuffer(); // 1,000 pixels
    await expect(readHeader(png, 'png', LIMITS)).resolves.toMatchObject({ width: 25, height: 40, frames: 1 });
    expect(await codeOf(readHeader(png, 'png', { ...LIMITS, maxInputPixels: 999 }))).toBe('TooManyPixels');
  });

  it('takes exactly maxFrames, and refuses one frame more', async () => {
    const gif = await animated(5, 4);
    await expect(readHeader(gif, 'gif', LIMITS)).resolves.toMatchObject({ frames: 5, animated: true });
    expect(await codeOf(readHeader(gif, 'gif', { ...LIMITS, maxFrames: 4 }))).toBe('TooManyFrames');
  });

  it('counts the pixels of every frame together', async () => {
    const gif = await animated(4, 10); // 100 a frame, 400 in all
    await expect(readHeader(gif, 'gif', { ...LIMITS, maxInputPixels: 400 })).resolves.toMatchObject({
      frames: 4,
    });
    const error = readHeader(gif, 'gif', { ...LIMITS, maxInputPixels: 399 });
    await expect(error).rejects.toMatchObject({
      code: 'TooManyPixels',
      message: expect.stringContaining('4 frames'),
    });
  });

  it('treats a one-frame GIF and a TIFF as still images', async () => {
    const gif = await solid(4, 4).gif().toBuffer();
    await expect(readHeader(gif, 'gif', LIMITS)).resolves.toMatchObject({ frames: 1, animated: false });
    const tiff = await solid(4, 4).tiff().toBuffer();
    await expect(readHeader(tiff, 'tiff', LIMITS)).resolves.toMatchObject({ format: 'tiff', frames: 1 });
    // A multi-page TIFF is not an animation: only its first page is used.
    const pages = await sharp(Buffer.alloc(4 * 12 * 3, 50), {
      raw: { width: 4, height: 12, channels: 3, pageHeight: 4 },
    })
      .tiff()
      .toBuffer();
    await expect(readHeader(pages, 'tiff', { ...LIMITS, maxFrames: 1 })).resolves.toMatchObject({
      width: 4,
      height: 4,
      frames: 1,
      animated: false,
    });
  });

  it('reports the upright size of a photo with EXIF orientation', async () => {
    const jpeg = await solid(8, 2).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    await expect(readHeader(jpeg, 'jpeg', LIMITS)).resolves.toMatchObject({ width: 2, height: 8 });
  });

  it('reports alpha and 8-bit RGB, and no profile when none is embedded', async () => {
    const rgba = await readHeader(await solid(4, 4, 4).png().toBuffer(), 'png', LIMITS);
    expect(rgba).toMatchObject({ hasAlpha: true, rgb8: true, icc: undefined, hevc: false, animated: false });
    const grey = await readHeader(
      await sharp(Buffer.alloc(16, 128), { raw: { width: 4, height: 4, channels: 1 } })
        .toColourspace('b-w')
        .png()
        .toBuffer(),
      'png',
      LIMITS,
    );
    expect(grey).toMatchObject({ hasAlpha: false, rgb8: false });
    const sixteen = await readHeader(
      await solid(4, 4).toColourspace('rgb16').png().toBuffer(),
      'png',
      LIMITS,
    );
    expect(sixteen.rgb8).toBe(false);
    const profiled = await readHeader(await solid(4, 4).withIccProfile('p3').png().toBuffer(), 'png', LIMITS);
    expect(profiled.icc?.length).toBeGreaterThan(0);
  });

  it('refuses bytes that are not the format they were sniffed as', async () => {
    const png = await solid(4, 4).png().toBuffer();
    expect(await codeOf(readHeader(png, 'jpeg', LIMITS))).toBe('UnsupportedFormat');
    expect(await codeOf(readHeader(Buffer.from('not an image at all'), 'png', LIMITS))).toBe(
      'UnsupportedFormat',
    );
    await expect(readHeader(png.subarray(0, 20), 'png', LIMITS)).rejects.toMatchObject({
      code: 'CorruptImage',
      message: 'The image header could not be read.',
    });
  });
});

describe('readHeader knows each accepted format by what libvips reads', () => {
  /** One 4x4 still image of each format sharp writes; HEVC-coded HEIF comes from the corpus. */
  const stills: Record<Exclude<SourceFormat, 'heif'>, () => Promise<Buffer>> = {
    jpeg: () => solid(4, 4).jpeg().toBuffer(),
    png: () => solid(4, 4).png().toBuffer(),
    webp: () => solid(4, 4).webp().toBuffer(),
    gif: () => solid(4, 4).gif().toBuffer(),
    tiff: () => solid(4, 4).tiff().toBuffer(),
    avif: () => solid(4, 4).avif({ effort: 0 }).toBuffer(),
  };
  const sniffedAs: SourceFormat[] = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif'];
  /** AVIF is HEIF with AV1 inside: libvips reads both as `heif`, so the sniffed name may be either. */
  const family = (format: SourceFormat) => (format === 'heif' ? 'avif' : format);

  it.each(Object.entries(stills))('takes %s only when sniffed as that format', async (actual, make) => {
    const bytes = await make();
    for (const sniffed of sniffedAs) {
      const code = await codeOf(readHeader(bytes, sniffed, LIMITS));
      expect([sniffed, code]).toEqual([sniffed, family(sniffed) === actual ? 'ok' : 'UnsupportedFormat']);
    }
  });

  it('names AV1-coded HEIF avif and HEVC-coded HEIF heif, whatever the sniffer said', async () => {
    const avif = await stills.avif();
    for (const sniffed of ['avif', 'heif'] as const) {
      await expect(readHeader(avif, sniffed, LIMITS)).resolves.toMatchObject({
        format: 'avif',
        hevc: false,
        frames: 1,
        rgb8: true,
      });
    }
    // An iPhone photo, 2566x3313: its header is read, its HEVC pixels are left to heic-decode.
    const heic = readFileSync(corpusFile('valid/exif-samples--IMG_5195.HEIC'));
    const limits = { ...LIMITS, maxInputPixels: 10_000_000 };
    for (const sniffed of ['avif', 'heif'] as const) {
      await expect(readHeader(heic, sniffed, limits)).resolves.toMatchObject({
        format: 'heif',
        hevc: true,
        rgb8: true,
        width: 2566,
        height: 3313,
      });
    }
  });

  it('refuses a HEIF/AVIF collection of separate images, however it was sniffed', async () => {
    // Five 4096x800 images side by side in one file, none of them the primary picture.
    const collection = readFileSync(corpusFile('hostile/sharp--pitm.avif'));
    const limits = { ...LIMITS, maxInputPixels: 10_000_000 };
    for (const sniffed of ['avif', 'heif'] as const) {
      await expect(readHeader(collection, sniffed, limits)).rejects.toMatchObject({
        code: 'UnsupportedFormat',
        message: expect.stringContaining('5 separate images'),
      });
    }
  });

  it('counts the frames of an animated WebP as it does a GIF', async () => {
    const webp = await animated(3, 4, 'webp');
    await expect(readHeader(webp, 'webp', LIMITS)).resolves.toMatchObject({ frames: 3, animated: true });
    expect(await codeOf(readHeader(webp, 'webp', { ...LIMITS, maxFrames: 2 }))).toBe('TooManyFrames');
  });

  it('calls only 8-bit sRGB with 3 or 4 channels rgb8', async () => {
    const rgb = await readHeader(await solid(4, 4, 3).jpeg().toBuffer(), 'jpeg', LIMITS);
    expect(rgb).toMatchObject({ rgb8: true, hasAlpha: false });
    const cmyk = await readHeader(await solid(4, 4).toColourspace('cmyk').jpeg().toBuffer(), 'jpeg', LIMITS);
    expect(cmyk.rgb8).toBe(false);
  });

  it('says in its refusals what the file has and what the limit is', async () => {
    const png = await solid(25, 40).png().toBuffer();
    // libvips refuses it while reading the header.
    await expect(readHeader(png, 'png', { ...LIMITS, maxInputPixels: 999 })).rejects.toMatchObject({
      message: 'The image has more pixels than allowed.',
    });
    const gif = await animated(4, 10);
    await expect(readHeader(gif, 'gif', { ...LIMITS, maxInputPixels: 399 })).rejects.toMatchObject({
      message: 'The animation has 4 frames of 10x10 pixels, over the limit of 399 in all.',
    });
    await expect(readHeader(gif, 'gif', { ...LIMITS, maxFrames: 3 })).rejects.toMatchObject({
      message: 'The animation has 4 frames, over the limit of 3.',
    });
    await expect(readHeader(png, 'jpeg', LIMITS)).rejects.toMatchObject({
      message: 'The file looks like jpeg but does not parse as one.',
    });
  });
});

describe('inputError maps what libvips says to failure codes', () => {
  it.each([
    ['Input image exceeds pixel limit', 'TooManyPixels', 'The image has more pixels than allowed.'],
    [
      'Input buffer contains unsupported image format',
      'UnsupportedFormat',
      'The file is not an image format we accept.',
    ],
    ['timeout: 50% complete', 'ProcessingTimeout', 'The image took too long to process.'],
    ['VipsJpeg: Premature end of JPEG file', 'CorruptImage', 'fallback text'],
  ])('%s: %s', (message, code, shown) => {
    const cause = new Error(message);
    const mapped = inputError(cause, 'fallback text');
    expect(mapped).toBeInstanceOf(ImageError);
    // The user sees the code and our message; the operator's log keeps what libvips said.
    expect(mapped).toMatchObject({ code, message: shown, cause });
  });

  it.each([
    'out of memory',
    'vips: cannot allocate 1 GB',
    'ENOMEM: not enough memory',
    'EMFILE: too many open files',
    'Expected number for width but received abc',
  ])('lets %s through to be retried: not the file fault', (message) => {
    const error = new Error(message);
    expect(inputError(error, 'x')).toBe(error);
  });

  it('passes an ImageError and a non-Error through unchanged', () => {
    const ours = new ImageError('TooManyFrames', 'x');
    expect(inputError(ours, 'y')).toBe(ours);
    expect(inputError('a string', 'y')).toBe('a string');
  });
});
