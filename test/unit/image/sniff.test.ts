import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { configureSharp } from '../../../functions/optimizer/image/configure.ts';
import { ImageError } from '../../../functions/optimizer/image/errors.ts';
import { processImage } from '../../../functions/optimizer/image/process.ts';
import { sniffFormat } from '../../../functions/optimizer/image/sniff.ts';
import { DEFAULT_VARIANTS } from '../../../functions/shared/variants.ts';
import { corpusFile } from '../../support/corpus.ts';

const LIMITS = { maxInputPixels: 100_000_000, maxFrames: 200, timeoutMs: 20_000 };
const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
/** An ISO-BMFF `ftyp` box: size, 'ftyp', major brand, minor version, compatible brands. */
const ftyp = (major: string, ...compatible: string[]) => {
  const size = 16 + 4 * compatible.length;
  return bytes(
    [0, 0, 0, size],
    'ftyp',
    major,
    [0, 0, 0, 0],
    ...compatible,
    Buffer.alloc(16).toString('latin1'),
  );
};

describe('sniffFormat', () => {
  it.each([
    ['jpeg', bytes([0xff, 0xd8, 0xff, 0xe0], 'rest')],
    ['png', bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'IHDR')],
    ['gif', bytes('GIF89a', [1, 0, 1, 0])],
    ['gif', bytes('GIF87a', [1, 0, 1, 0])],
    ['webp', bytes('RIFF', [0, 0, 0, 0], 'WEBPVP8 ')],
    ['tiff', bytes('II*', [0], 'rest')],
    ['tiff', bytes('MM', [0, 42], 'rest')],
    ['avif', ftyp('avif', 'mif1', 'miaf')],
    ['avif', ftyp('mif1', 'avif', 'miaf')],
    ['heif', ftyp('heic', 'mif1', 'heic')],
    ['heif', ftyp('mif1', 'heic')],
    ['heif', ftyp('heix', 'mif1')],
  ])('recognises %s by its magic bytes', (format, input) => {
    expect(sniffFormat(input)).toBe(format);
  });

  it.each([
    ['SVG', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'],
    ['SVG with an XML prolog', '<?xml version="1.0"?><svg/>'],
    ['PDF', '%PDF-1.7\n'],
    ['PostScript', '%!PS-Adobe-3.0 EPSF-3.0\n'],
    ['MVG', 'push graphic-context\nviewbox 0 0 640 480\n'],
    ['HTML', '<!doctype html><html><body>hi</body></html>'],
    ['EICAR', 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'],
    ['empty', ''],
    ['a lone JPEG SOI', '\xff\xd8'],
    ['BigTIFF', 'II+\0\x08\0\0\0'],
    ['gzip (SVGZ)', '\x1f\x8b\x08\0'],
  ])('refuses %s', (_, text) => {
    expect(sniffFormat(Buffer.from(text, 'latin1'))).toBeUndefined();
  });

  it('refuses ISO-BMFF files that are not images (MP4, JPEG 2000)', () => {
    expect(sniffFormat(ftyp('isom', 'iso2', 'mp41'))).toBeUndefined();
    expect(sniffFormat(ftyp('jp2 ', 'jp2 '))).toBeUndefined();
  });

  it('reads the real format of corpus files whatever their name says', () => {
    expect(
      sniffFormat(readFileSync(corpusFile('hostile/payloads--imagetragik1_payload_url_touch.jpg'))),
    ).toBeUndefined();
    expect(
      sniffFormat(readFileSync(corpusFile('hostile/payloads--imagetragik1_payload_url_curl.png'))),
    ).toBeUndefined();
    expect(sniffFormat(readFileSync(corpusFile('hostile/libvips--looks-like-svg.webp')))).toBe('webp');
    expect(sniffFormat(readFileSync(corpusFile('valid/exif-samples--IMG_5195.HEIC')))).toBe('heif');
  });
});

describe('untrusted bytes never reach an unneeded decoder', () => {
  beforeAll(() => {
    configureSharp();
  });

  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>',
  );

  it('libvips itself refuses SVG once the loaders are restricted', async () => {
    await expect(sharp(svg).metadata()).rejects.toThrow(/unsupported image format/);
  });

  it('libvips still reads every accepted format', async () => {
    for (const file of [
      'valid/sharp--Landscape_1.jpg',
      'valid/sharp--16-bit-grey-alpha.png',
      'valid/sharp--4.webp',
      'valid/sharp--rotating-squares.gif',
      'valid/sharp--tifftag-photoshop.tiff',
      'valid/exif-samples--IMG_5195.HEIC',
    ]) {
      await expect(sharp(readFileSync(corpusFile(file))).metadata(), file).resolves.toHaveProperty('width');
    }
  });

  it('an SVG declared as PNG ends UnsupportedFormat', async () => {
    await expect(processImage(svg, DEFAULT_VARIANTS, LIMITS)).rejects.toMatchObject({
      name: 'ImageError',
      code: 'UnsupportedFormat',
    });
  });

  it('SVG behind a PNG signature is refused as a broken PNG, not rendered', async () => {
    const disguised = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), svg]);
    const error = await processImage(disguised, DEFAULT_VARIANTS, LIMITS).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImageError);
    expect((error as ImageError).code).toBe('CorruptImage');
  });
});
