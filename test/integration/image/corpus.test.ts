import { readdirSync, readFileSync } from 'node:fs';
import sharp, { type Metadata } from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { configureSharp } from '../../../functions/optimizer/image/configure.ts';
import { ImageError } from '../../../functions/optimizer/image/errors.ts';
import { type ProcessedImage, processImage } from '../../../functions/optimizer/image/process.ts';
import { DEFAULT_VARIANTS, type VariantSpec } from '../../../functions/shared/variants.ts';
import { corpusDir, corpusFile, expectations } from '../../support/corpus.ts';

// The production default time limit: a loaded 2-core machine decodes the 16 MP HEIF in 15-20 s.
const LIMITS = { maxInputPixels: 100_000_000, maxFrames: 200, timeoutMs: 60_000 };
const SPECS: readonly VariantSpec[] = DEFAULT_VARIANTS;
const expected = expectations();

/**
 * Upright dimensions known independently of the code under test. The Landscape_N / Portrait_N
 * files are one picture stored with EXIF orientations 1-8; the HEIF files carry `irot` transforms
 * (the Nokia file is stored 4608x3456 with a quarter turn, so upright it is portrait).
 */
const UPRIGHT: Record<string, [number, number]> = {
  'valid/exif-samples--HMD_Nokia_8.3_5G.heif': [3456, 4608],
  'valid/exif-samples--IMG_5195.HEIC': [2566, 3313],
};
for (const n of [1, 2, 3, 4, 5, 6, 7, 8]) UPRIGHT[`valid/sharp--Landscape_${n}.jpg`] = [600, 450];
for (const n of [1, 3, 6, 8]) UPRIGHT[`valid/sharp--Portrait_${n}.jpg`] = [450, 600];

/** Strings planted in hostile metadata (EXIF, XMP, IPTC, comments, PNG text): none may survive. */
const PAYLOAD_MARKERS = [
  'Exif\0',
  'http://ns.adobe.com/xap',
  'Photoshop 3.0',
  '<?php',
  'phpinfo',
  '<script',
  'passwd',
];

const VIPS_FORMAT = { jpeg: 'jpeg', webp: 'webp', avif: 'heif' } as const;

async function sourceFacts(input: Buffer): Promise<{ hasAlpha: boolean; pages: number; delay?: number[] }> {
  // Ask libvips about the source independently; HEVC HEIF headers still parse.
  const meta = await sharp(input).metadata();
  return { hasAlpha: meta.hasAlpha === true, pages: meta.pages ?? 1, delay: meta.delay };
}

const sum = (values: readonly number[] | undefined) => (values ?? []).reduce((a, b) => a + b, 0);

/** A small grey rendering of an image, to compare orientation by content, not just by shape. */
async function fingerprint(body: Buffer): Promise<Buffer> {
  return sharp(body).resize(32, 32, { fit: 'fill' }).greyscale().raw().toBuffer();
}

function meanDifference(a: Buffer, b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

async function checkReady(file: string, input: Buffer, result: ProcessedImage): Promise<Metadata[]> {
  const source = await sourceFacts(input);
  const upright = UPRIGHT[file];
  if (upright) expect([result.width, result.height]).toEqual(upright);
  expect(result.placeholder).toMatch(/^[A-Za-z0-9+/]{20,60}={0,2}$/);
  expect(result.variants.map((v) => v.name)).toEqual(SPECS.map((s) => s.name));

  const metas: Metadata[] = [];
  for (const [i, variant] of result.variants.entries()) {
    const spec = SPECS[i] as VariantSpec;
    const where = `${file} -> ${variant.name}`;
    const meta = await sharp(variant.body).metadata();
    metas.push(meta);

    // The record describes the bytes.
    expect(meta.format, where).toBe(VIPS_FORMAT[spec.format]);
    expect(variant.format, where).toBe(spec.format);
    expect(variant.size, where).toBe(variant.body.length);
    expect(meta.width, where).toBe(variant.width);
    expect(meta.pageHeight ?? meta.height, where).toBe(variant.height);

    // Within the box, never enlarged.
    expect(variant.width, where).toBeLessThanOrEqual(Math.min(spec.width, result.width));
    expect(variant.height, where).toBeLessThanOrEqual(Math.min(spec.height, result.height));
    // Fitted: one side touches the box unless the source was already smaller.
    const scale = Math.min(1, spec.width / result.width, spec.height / result.height);
    expect(Math.abs(variant.width - result.width * scale), where).toBeLessThanOrEqual(1);
    expect(Math.abs(variant.height - result.height * scale), where).toBeLessThanOrEqual(1);

    // sRGB, and no metadata at all.
    expect(meta.space, where).toBe('srgb');
    expect(meta.exif, where).toBeUndefined();
    expect(meta.xmp, where).toBeUndefined();
    expect(meta.iptc, where).toBeUndefined();
    expect(meta.orientation, where).toBeUndefined();
    expect(meta.icc, where).toBeUndefined();
    const text = variant.body.toString('latin1');
    for (const marker of PAYLOAD_MARKERS)
      expect(text.includes(marker), `${where} contains ${marker}`).toBe(false);

    // Alpha where the format allows it, flattened where it does not.
    if (spec.format === 'jpeg') expect(meta.hasAlpha, where).toBe(false);
    else expect(meta.hasAlpha, where).toBe(source.hasAlpha);

    // Animation kept in WebP (same total duration; libwebp may merge identical frames), first
    // frame elsewhere.
    expect(variant.frames, where).toBe(meta.pages ?? 1);
    if (spec.format === 'webp' && result.frames > 1) {
      expect(meta.pages, where).toBeGreaterThan(1);
      expect(meta.pages, where).toBeLessThanOrEqual(result.frames);
      expect(sum(meta.delay), where).toBe(sum(source.delay));
    } else {
      expect(meta.pages ?? 1, where).toBe(1);
    }
  }
  expect(result.frames).toBe(source.pages > 1 && /\.(gif|webp)$/.test(file) ? source.pages : 1);
  return metas;
}

const timeLimit = LIMITS.timeoutMs + 10_000;

describe('every corpus file ends as expected.json says', () => {
  beforeAll(() => {
    configureSharp();
  });

  it('expected.json lists every corpus file', () => {
    const onDisk = ['valid', 'hostile'].flatMap((dir) =>
      readdirSync(`${corpusDir}/${dir}`).map((name) => `${dir}/${name}`),
    );
    expect(onDisk.sort()).toEqual(Object.keys(expected).sort());
  });

  for (const [file, outcome] of Object.entries(expected)) {
    it(
      `${file}: ${outcome.expect}${outcome.codes ? ` (${outcome.codes.join('|')})` : ''}`,
      async () => {
        const input = readFileSync(corpusFile(file));
        const settled = await processImage(input, SPECS, LIMITS).then(
          (result) => ({ result }),
          (error: unknown) => ({ error }),
        );
        if ('error' in settled) {
          expect(settled.error, `${file} threw something other than an ImageError`).toBeInstanceOf(
            ImageError,
          );
          expect(outcome.expect, `${file} failed: ${(settled.error as Error).message}`).not.toBe('ready');
          expect(outcome.codes ?? []).toContain((settled.error as ImageError).code);
        } else {
          expect(outcome.expect, `${file} should have failed`).not.toBe('failed');
          await checkReady(file, input, settled.result);
        }
      },
      timeLimit,
    );
  }
});

describe('orientation, by content', () => {
  beforeAll(() => {
    configureSharp();
  });

  it('all eight EXIF orientations come out as the same upright picture', async () => {
    const render = async (name: string) => {
      const result = await processImage(readFileSync(corpusFile(`valid/sharp--${name}.jpg`)), SPECS, LIMITS);
      return fingerprint((result.variants[0] as { body: Buffer }).body);
    };
    const reference = await render('Landscape_1');
    // A wrongly applied orientation (mirror, half or quarter turn) differs by far more than this.
    const mirrored = await sharp(reference, { raw: { width: 32, height: 32, channels: 1 } })
      .flop()
      .raw()
      .toBuffer();
    expect(meanDifference(reference, mirrored)).toBeGreaterThan(20);
    for (const n of [2, 3, 4, 5, 6, 7, 8]) {
      expect(meanDifference(reference, await render(`Landscape_${n}`)), `Landscape_${n}`).toBeLessThan(6);
    }
    const portrait = await render('Portrait_1');
    for (const n of [3, 6, 8]) {
      expect(meanDifference(portrait, await render(`Portrait_${n}`)), `Portrait_${n}`).toBeLessThan(6);
    }
  });
});
