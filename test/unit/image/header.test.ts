import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ImageError } from '../../../functions/optimizer/image/errors.ts';
import { inputError, readHeader } from '../../../functions/optimizer/image/header.ts';

/** Header checks on tiny generated images: no pixels decoded, a few milliseconds each. */
const LIMITS = { maxInputPixels: 1_000, maxFrames: 5, timeoutMs: 1_000 };
const solid = (width: number, height: number, channels: 3 | 4 = 3) =>
  sharp({ create: { width, height, channels, background: { r: 10, g: 20, b: 30, alpha: 0.5 } } });
/** An animated GIF of `frames` frames of `size` x `size`. */
const animated = (frames: number, size: number) => {
  const strip = Buffer.alloc(size * size * frames * 3);
  for (let f = 0; f < frames; f++) strip.fill(f * 40, f * size * size * 3, (f + 1) * size * size * 3);
  return sharp(strip, { raw: { width: size, height: size * frames, channels: 3, pageHeight: size } })
    .gif({ delay: Array.from({ length: frames }, () => 100) })
    .toBuffer();
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
    expect(await codeOf(readHeader(png.subarray(0, 20), 'png', LIMITS))).toBe('CorruptImage');
  });
});

describe('inputError maps what libvips says to failure codes', () => {
  it.each([
    ['Input image exceeds pixel limit', 'TooManyPixels'],
    ['Input buffer contains unsupported image format', 'UnsupportedFormat'],
    ['timeout: 50% complete', 'ProcessingTimeout'],
    ['VipsJpeg: Premature end of JPEG file', 'CorruptImage'],
  ])('%s: %s', (message, code) => {
    const mapped = inputError(new Error(message), 'fallback text');
    expect(mapped).toBeInstanceOf(ImageError);
    expect(mapped).toMatchObject({ code });
    if (code === 'CorruptImage') expect((mapped as Error).message).toBe('fallback text');
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
