import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { thumbHashToRGBA } from 'thumbhash';
import { beforeAll, describe, expect, it } from 'vitest';
import { configureSharp } from '../../../functions/optimizer/image/configure.ts';
import { ImageError } from '../../../functions/optimizer/image/errors.ts';
import { type ProcessLimits, processImage } from '../../../functions/optimizer/image/process.ts';
import { rawToTiff } from '../../../functions/optimizer/image/raw-tiff.ts';
import {
  DEFAULT_VARIANTS,
  type VariantSpec,
  VariantSpecSchema,
  VariantSpecsSchema,
} from '../../../functions/shared/variants.ts';
import { corpusFile } from '../../support/corpus.ts';

const LIMITS: ProcessLimits = { maxInputPixels: 100_000_000, maxFrames: 200, timeoutMs: 20_000 };
const corpus = (file: string) => readFileSync(corpusFile(file));

async function failure(promise: Promise<unknown>): Promise<ImageError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ImageError);
  return error as ImageError;
}

/** An animated GIF of `frames` frames of `size` x `size`, each a different shade. */
async function animatedGif(frames: number, size: number): Promise<Buffer> {
  const strip = Buffer.alloc(size * size * frames * 3);
  for (let f = 0; f < frames; f++) strip.fill((f * 20) % 256, f * size * size * 3, (f + 1) * size * size * 3);
  return sharp(strip, { raw: { width: size, height: size * frames, channels: 3, pageHeight: size } })
    .gif({ delay: Array.from({ length: frames }, () => 100) })
    .toBuffer();
}

beforeAll(() => {
  configureSharp();
});

describe('limits are enforced from the header, before decoding', () => {
  // The proof that nothing was decoded is the file itself, not a stopwatch: only its first bytes are
  // given, so any attempt to decode its pixels fails as CorruptImage; a refusal from the header is
  // TooManyPixels. (How fast the refusal is: `npm run bench -- optimizer`.)
  it('refuses too many pixels from the header of a JPEG, without decoding it', async () => {
    const jpeg = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: '#808080' } })
      .jpeg()
      .toBuffer();
    const header = jpeg.subarray(0, 1024);
    const error = await failure(
      processImage(header, DEFAULT_VARIANTS, { ...LIMITS, maxInputPixels: 5_000_000 }),
    );
    expect(error.code).toBe('TooManyPixels');
    // Under the cap the same bytes are decoded, and fail as the truncated file they are.
    expect(
      (await failure(processImage(header, DEFAULT_VARIANTS, { ...LIMITS, maxInputPixels: 6_000_000 }))).code,
    ).toBe('CorruptImage');
    await expect(
      processImage(jpeg, DEFAULT_VARIANTS, { ...LIMITS, maxInputPixels: 6_000_000 }),
    ).resolves.toMatchObject({ width: 3000, height: 2000 });
  });

  it('refuses an oversized HEIC from its container, without the HEVC decode', async () => {
    const container = corpus('valid/exif-samples--IMG_5195.HEIC').subarray(0, 16_384);
    const error = await failure(
      processImage(container, DEFAULT_VARIANTS, { ...LIMITS, maxInputPixels: 2566 * 3313 - 1 }),
    );
    expect(error.code).toBe('TooManyPixels');
    expect(
      (await failure(processImage(container, DEFAULT_VARIANTS, { ...LIMITS, maxInputPixels: 2566 * 3313 })))
        .code,
    ).toBe('CorruptImage');
  });

  it('caps the frames of an animation', async () => {
    const gif = await animatedGif(12, 64);
    expect((await failure(processImage(gif, DEFAULT_VARIANTS, { ...LIMITS, maxFrames: 11 }))).code).toBe(
      'TooManyFrames',
    );
    const ready = await processImage(gif, DEFAULT_VARIANTS, { ...LIMITS, maxFrames: 12 });
    expect(ready.frames).toBe(12);
    expect(ready.variants.find((v) => v.format === 'webp')?.frames).toBe(12);
  });

  it('counts the pixels of every frame of an animation', async () => {
    const gif = await animatedGif(12, 64); // 4,096 pixels a frame, 49,152 in all
    const error = await failure(processImage(gif, DEFAULT_VARIANTS, { ...LIMITS, maxInputPixels: 40_000 }));
    expect(error.code).toBe('TooManyPixels');
  });

  it('stops at the processing time limit', async () => {
    const error = await failure(
      processImage(corpus('valid/exif-samples--jolla.jpg'), DEFAULT_VARIANTS, { ...LIMITS, timeoutMs: 5 }),
    );
    expect(error.code).toBe('ProcessingTimeout');
  });

  it('decodes HEIC in a worker, and stops a decode past its deadline', async () => {
    const heic = corpus('valid/exif-samples--IMG_5195.HEIC');
    expect((await processImage(heic, DEFAULT_VARIANTS, LIMITS)).format).toBe('heif');
    // Past the deadline the decode is cut short (its worker stopped); the next one still works.
    const error = await failure(processImage(heic, DEFAULT_VARIANTS, { ...LIMITS, timeoutMs: 150 }));
    expect(error.code).toBe('ProcessingTimeout');
    expect((await processImage(heic, DEFAULT_VARIANTS, LIMITS)).variants).toHaveLength(
      DEFAULT_VARIANTS.length,
    );
  });
});

describe('outputs', () => {
  it('orients before shrinking a large rotated photo', async () => {
    // Stored 3000x2000, left half black, with EXIF orientation 6 (turn 90° clockwise to display):
    // upright it is 2000x3000 with the black half on top.
    const stored = Buffer.alloc(3000 * 2000 * 3);
    for (let y = 0; y < 2000; y++) stored.fill(255, (y * 3000 + 1500) * 3, (y + 1) * 3000 * 3);
    const jpeg = await sharp(stored, { raw: { width: 3000, height: 2000, channels: 3 } })
      .withMetadata({ orientation: 6 })
      .jpeg()
      .toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);
    const result = await processImage(jpeg, DEFAULT_VARIANTS, LIMITS);
    expect(result).toMatchObject({ width: 2000, height: 3000 });
    expect(result.variants.map((v) => [v.name, v.width, v.height])).toEqual([
      ['thumb', 213, 320],
      ['medium', 853, 1280],
      ['large', 720, 1080],
    ]);
    for (const variant of result.variants) {
      const { data, info } = await sharp(variant.body)
        .greyscale()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const at = (y: number) => data[Math.floor(y) * info.width + Math.floor(info.width / 2)] ?? -1;
      expect(at(info.height * 0.1), variant.name).toBeLessThan(30);
      expect(at(info.height * 0.9), variant.name).toBeGreaterThan(225);
    }
  });

  it('keeps alpha in WebP and flattens it on white in JPEG', async () => {
    // The flag is drawn at 50% opacity: red, white and blue stripes, alpha 128 throughout.
    const result = await processImage(
      corpus('valid/sharp--Flag_of_the_Netherlands-alpha.png'),
      DEFAULT_VARIANTS,
      LIMITS,
    );
    const pixel = async (body: Buffer, x: number, y: number) => {
      const { data, info } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
      const at = (y * info.width + x) * info.channels;
      return [...data.subarray(at, at + info.channels)];
    };
    const [thumb, , large] = result.variants as [{ body: Buffer }, unknown, { body: Buffer }];
    const [r, g, b, a] = await pixel(thumb.body, 10, 10);
    expect(a).toBeGreaterThan(120);
    expect(a).toBeLessThan(136);
    expect(r).toBeGreaterThan(150); // red stripe, straight (not premultiplied) colour
    expect(g).toBeLessThan(60);
    expect(b).toBeLessThan(70);
    const flat = await pixel(large.body, 10, 10);
    expect(flat).toHaveLength(3);
    // Half-transparent red over white is pink, not dark red (over black) nor red (alpha dropped).
    expect(flat[0]).toBeGreaterThan(200);
    expect(flat[1]).toBeGreaterThan(120);
    expect(flat[1]).toBeLessThan(170);
  });

  it('flattens a mostly transparent 16-bit grey image on white', async () => {
    const result = await processImage(corpus('valid/sharp--16-bit-grey-alpha.png'), DEFAULT_VARIANTS, LIMITS);
    const large = result.variants.find((v) => v.format === 'jpeg');
    const stats = await sharp(large?.body).stats();
    expect(stats.channels).toHaveLength(3);
    for (const channel of stats.channels) expect(channel.mean).toBeGreaterThan(230);
  });

  it('converts CMYK to sRGB with the embedded profile', async () => {
    const result = await processImage(
      corpus('valid/sharp--Channel_digital_image_CMYK_color.jpg'),
      DEFAULT_VARIANTS,
      LIMITS,
    );
    for (const variant of result.variants) {
      const meta = await sharp(variant.body).metadata();
      expect(meta.channels).toBe(3);
      expect(meta.space).toBe('srgb');
    }
  });

  it('makes cover and AVIF variants as specified', async () => {
    const specs: VariantSpec[] = [
      { name: 'square', width: 200, height: 200, fit: 'cover', format: 'avif', quality: 50, effort: 2 },
      { name: 'wide', width: 300, height: 100, fit: 'inside', format: 'webp', quality: 70 },
    ];
    const result = await processImage(corpus('valid/sharp--Landscape_1.jpg'), specs, LIMITS);
    const [square, wide] = result.variants;
    expect(square).toMatchObject({ format: 'avif', contentType: 'image/avif', width: 200, height: 200 });
    expect(await sharp(square?.body).metadata()).toMatchObject({ format: 'heif', width: 200, height: 200 });
    expect(wide).toMatchObject({ width: 133, height: 100 });
  });

  it('gives a ThumbHash placeholder of the upright image, with its alpha', async () => {
    const portrait = await processImage(corpus('valid/sharp--Landscape_6.jpg'), DEFAULT_VARIANTS, LIMITS);
    const decoded = thumbHashToRGBA(Buffer.from(portrait.placeholder, 'base64'));
    expect(decoded.w).toBeGreaterThan(decoded.h); // Landscape_6 is stored portrait, upright landscape
    const flag = await processImage(
      corpus('valid/sharp--Flag_of_the_Netherlands-alpha.png'),
      DEFAULT_VARIANTS,
      LIMITS,
    );
    const rgba = thumbHashToRGBA(Buffer.from(flag.placeholder, 'base64')).rgba;
    expect(rgba[3]).toBeLessThan(200);
  });
});

describe('variant specs', () => {
  it('accepts the default set', () => {
    expect(VariantSpecsSchema.parse(DEFAULT_VARIANTS)).toEqual(DEFAULT_VARIANTS);
  });

  it('bounds the effort by format', () => {
    const base = { name: 'x', width: 10, height: 10, quality: 80 };
    expect(VariantSpecSchema.safeParse({ ...base, format: 'jpeg', effort: 2 }).success).toBe(true);
    expect(VariantSpecSchema.safeParse({ ...base, format: 'jpeg', effort: 3 }).success).toBe(false);
    expect(VariantSpecSchema.safeParse({ ...base, format: 'webp', effort: 7 }).success).toBe(false);
    expect(VariantSpecSchema.safeParse({ ...base, format: 'avif', effort: 9 }).success).toBe(true);
  });
});

describe('rawToTiff', () => {
  it.each([3, 4] as const)(
    'round-trips %i-channel pixels and carries the ICC profile to libvips',
    async (channels) => {
      const width = 37;
      const height = 300; // several strips
      const pixels = new Uint8Array(width * height * channels).map((_, i) => (i * 7) % 256);
      const icc = (await sharp(corpus('valid/exif-samples--IMG_5195.HEIC')).metadata()).icc as Buffer;
      const tiff = rawToTiff(pixels, width, height, channels, icc);
      const meta = await sharp(tiff).metadata();
      expect(meta).toMatchObject({ format: 'tiff', width, height, channels, hasAlpha: channels === 4 });
      expect(meta.icc?.equals(icc)).toBe(true);
      const back = await sharp(tiff, { ignoreIcc: true }).raw().toBuffer();
      expect(back.equals(Buffer.from(pixels))).toBe(true);
    },
  );

  it('converts Display P3 pixels to sRGB after shrinking, as libvips does at full size', async () => {
    // A 3000x2000 gradient tagged Display P3: the deferred conversion must match sharp's own.
    const width = 3000;
    const height = 2000;
    const pixels = Buffer.alloc(width * height * 3);
    for (let i = 0; i < pixels.length; i += 3) {
      const x = (i / 3) % width;
      pixels[i] = Math.round((x / width) * 255);
      pixels[i + 1] = 40;
      pixels[i + 2] = 255 - Math.round((x / width) * 255);
    }
    const p3 = await sharp(pixels, { raw: { width, height, channels: 3 } })
      .withIccProfile('p3')
      .jpeg({ quality: 95 })
      .toBuffer();
    const result = await processImage(p3, DEFAULT_VARIANTS, LIMITS);
    const large = result.variants.find((v) => v.name === 'large')?.body;
    const ours = await sharp(large).raw().toBuffer();
    const reference = await sharp(p3).resize(1620, 1080).toColourspace('srgb').raw().toBuffer();
    const untouched = await sharp(p3, { ignoreIcc: true }).resize(1620, 1080).raw().toBuffer();
    const diff = (a: Buffer, b: Buffer) =>
      a.reduce((sum, v, i) => sum + Math.abs(v - (b[i] ?? 0)), 0) / a.length;
    expect(diff(ours, reference)).toBeLessThan(2);
    expect(diff(untouched, reference)).toBeGreaterThan(5); // the profile matters for this image
  });
});
