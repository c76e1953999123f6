import sharp, { type OutputInfo, type ResizeOptions, type Sharp, type SharpOptions } from 'sharp';
import { OUTPUT_FORMATS, type VariantFormat, type VariantSpec } from '../../shared/variants.ts';
import { restrictLoaders } from './configure.ts';
import { ImageError } from './errors.ts';
import { inputError, type ProcessLimits, readHeader, type SourceHeader } from './header.ts';
import { type DecodedSource, decodeHevcHeif } from './heic.ts';
import { thumbHashOf } from './placeholder.ts';
import { rawToTiff } from './raw-tiff.ts';
import { type SourceFormat, sniffFormat } from './sniff.ts';

export type { ProcessLimits } from './header.ts';
export type { SourceFormat } from './sniff.ts';

export interface ProcessedVariant {
  name: string;
  format: VariantFormat;
  contentType: string;
  /** Of one frame, as displayed. */
  width: number;
  height: number;
  /** Frames written: more than 1 only for a WebP variant of an animated source. */
  frames: number;
  size: number;
  body: Buffer;
}

export interface ProcessedImage {
  /** The format read from the bytes (not the declared content type). */
  format: SourceFormat;
  /** Of the upright image (after EXIF orientation or HEIF transforms); of one frame if animated. */
  width: number;
  height: number;
  /** Frames of an animated GIF/WebP, else 1. */
  frames: number;
  /** ThumbHash of the upright sRGB image, base64. */
  placeholder: string;
  variants: ProcessedVariant[];
}

/**
 * Turns an image's bytes into the configured variants: upright, sRGB, never enlarged, without any
 * metadata (EXIF, XMP, IPTC, ICC, comments), alpha kept for WebP/AVIF and flattened on white for
 * JPEG; animated GIF/WebP stay animated as WebP.
 *
 * Throws `ImageError` for input that no retry can fix (`UnsupportedFormat`, `TooManyPixels`,
 * `TooManyFrames`, `CorruptImage`, `ProcessingTimeout`); anything else thrown is an internal or
 * transient failure.
 */
export async function processImage(
  input: Buffer,
  specs: readonly VariantSpec[],
  limits: ProcessLimits,
): Promise<ProcessedImage> {
  restrictLoaders();
  const deadline = Date.now() + limits.timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError(limits.timeoutMs)), limits.timeoutMs);
  });
  try {
    return await Promise.race([processWithin(input, specs, limits, deadline), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function timeoutError(timeoutMs: number, cause?: unknown): ImageError {
  return new ImageError('ProcessingTimeout', `Processing took longer than ${timeoutMs} ms.`, { cause });
}

async function processWithin(
  input: Buffer,
  specs: readonly VariantSpec[],
  limits: ProcessLimits,
  deadline: number,
): Promise<ProcessedImage> {
  const sniffed = sniffFormat(input);
  if (!sniffed) {
    throw new ImageError(
      'UnsupportedFormat',
      'The file is not a JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIF image.',
    );
  }
  const header = await readHeader(input, sniffed, limits);

  // libvips stops a pipeline that runs past its timeout; the race in processImage covers the rest.
  const seconds = () => {
    const left = deadline - Date.now();
    if (left <= 0) throw timeoutError(limits.timeoutMs);
    return Math.max(1, Math.ceil(left / 1000));
  };
  const inputOptions: SharpOptions = { failOn: 'warning', limitInputPixels: limits.maxInputPixels };
  const rendered = header.animated
    ? await renderAnimated({ input, options: inputOptions }, specs, seconds)
    : await renderStill(
        header.hevc
          ? await decodeHevcHeif(input, limits.maxInputPixels, deadline)
          : { input, options: inputOptions },
        header,
        specs,
        seconds,
      );
  return {
    format: header.format,
    width: header.width,
    height: header.height,
    frames: header.frames,
    ...rendered,
  };
}

type Rendered = Pick<ProcessedImage, 'placeholder' | 'variants'>;

/** How much a spec shrinks a `width` x `height` image (1 or more means it is not shrunk). */
function scaleFor(spec: VariantSpec, width: number, height: number): number {
  const sx = spec.width / width;
  const sy = spec.height / height;
  return spec.fit === 'cover' ? Math.max(sx, sy) : Math.min(sx, sy);
}

/**
 * The resize that takes the working copy to a variant. `inside` sizes are computed from the source's
 * own dimensions, so they do not depend on the rounding of the working copy.
 */
function targetOf(spec: VariantSpec, header: SourceHeader): ResizeOptions {
  if (spec.fit === 'cover')
    return { width: spec.width, height: spec.height, fit: 'cover', withoutEnlargement: true };
  const scale = Math.min(1, scaleFor(spec, header.width, header.height));
  return {
    width: Math.max(1, Math.round(header.width * scale)),
    height: Math.max(1, Math.round(header.height * scale)),
    fit: 'fill',
  };
}

/**
 * A still image is decoded once, shrunk on load where the codec can (JPEG DCT scaling, WebP) straight
 * to the size of the largest variant, and oriented; every variant and the placeholder are then cut
 * from that small sRGB working copy. Measured faster than one pipeline per variant and than a
 * full-size decode (docs/performance.md), and memory holds one working copy of the largest variant.
 *
 * An 8-bit RGB(A) image with an ICC profile is converted to sRGB after shrinking, not before: the
 * profile conversion at full size costs about as much as the decode. The difference in the result is
 * that of resampling in the source's (gamma-encoded) space rather than in sRGB's: invisible.
 */
async function renderStill(
  source: DecodedSource,
  header: SourceHeader,
  specs: readonly VariantSpec[],
  seconds: () => number,
): Promise<Rendered> {
  const scale = Math.min(1, Math.max(...specs.map((spec) => scaleFor(spec, header.width, header.height))));
  const iccLater = header.icc !== undefined && header.rgb8 && (scale < 1 || header.hevc);
  let pipeline = sharp(source.input, iccLater ? { ...source.options, ignoreIcc: true } : source.options)
    .autoOrient()
    .timeout({ seconds: seconds() });
  // heic-decode always returns RGBA; drop the alpha channel a photo never had.
  if (header.hevc && !header.hasAlpha) pipeline = pipeline.removeAlpha();
  if (scale < 1) {
    pipeline = pipeline.resize({
      width: Math.ceil(header.width * scale),
      height: Math.ceil(header.height * scale),
      fit: 'inside',
    });
  }
  if (!iccLater) pipeline = pipeline.toColourspace('srgb');
  let working: { data: Buffer; info: OutputInfo };
  try {
    working = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (cause) {
    throw inputError(cause, 'The image data is damaged or incomplete.');
  }
  if (iccLater && header.icc)
    working = await convertToSrgb(working, header.icc, seconds()).catch(encodeError);
  const { data, info } = working;
  // `info.premultiplied` only says premultiplication was used during the resize: the raw output
  // itself is always unpremultiplied, so it must not be passed back as `premultiplied`.
  const rawInput: SharpOptions = { raw: { width: info.width, height: info.height, channels: info.channels } };
  const [variants, placeholder] = await Promise.all([
    Promise.all(
      specs.map((spec) =>
        encodeVariant(sharp(data, rawInput), spec, seconds(), targetOf(spec, header)).catch(encodeError),
      ),
    ),
    thumbHashOf(sharp(data, rawInput)),
  ]);
  return { variants, placeholder };
}

/** Converts 8-bit RGB(A) working pixels from their ICC profile to sRGB. */
async function convertToSrgb(
  working: { data: Buffer; info: OutputInfo },
  icc: Buffer,
  seconds: number,
): Promise<{ data: Buffer; info: OutputInfo }> {
  const { data, info } = working;
  if (info.channels !== 3 && info.channels !== 4)
    throw new Error(`unexpected ${info.channels}-channel working copy`);
  const tiff = rawToTiff(data, info.width, info.height, info.channels, icc);
  return sharp(tiff).toColourspace('srgb').timeout({ seconds }).raw().toBuffer({ resolveWithObject: true });
}

/**
 * Animated GIF/WebP: WebP variants keep every frame (`pages: -1`), the other formats take the first
 * frame. One pipeline per variant, straight from the input; frames and pixels were capped already.
 */
async function renderAnimated(source: DecodedSource, specs: readonly VariantSpec[], seconds: () => number) {
  const fromInput = (pages: number) =>
    sharp(source.input, { ...source.options, pages }).toColourspace('srgb');
  const [variants, placeholder] = await Promise.all([
    Promise.all(
      specs.map((spec) =>
        encodeVariant(fromInput(OUTPUT_FORMATS[spec.format].animated ? -1 : 1), spec, seconds()).catch(
          (cause: unknown) => {
            throw inputError(cause, 'The animation is damaged or incomplete.');
          },
        ),
      ),
    ),
    thumbHashOf(fromInput(1)).catch((cause: unknown) => {
      throw inputError(cause, 'The animation is damaged or incomplete.');
    }),
  ]);
  return { variants, placeholder } satisfies Rendered;
}

function encodeError(cause: unknown): never {
  if (cause instanceof Error && cause.message.startsWith('timeout:')) {
    throw new ImageError('ProcessingTimeout', 'The image took too long to process.', { cause });
  }
  throw cause;
}

/** Resizes (never enlarging) and encodes one variant; sharp writes no metadata unless asked to. */
async function encodeVariant(
  pipeline: Sharp,
  spec: VariantSpec,
  seconds: number,
  resize: ResizeOptions = { width: spec.width, height: spec.height, fit: spec.fit, withoutEnlargement: true },
): Promise<ProcessedVariant> {
  const resized = pipeline.resize(resize).timeout({ seconds });
  const output = OUTPUT_FORMATS[spec.format];
  const encoded = (output.flatten ? resized.flatten({ background: '#ffffff' }) : resized).toFormat(
    spec.format,
    output.encoder(spec),
  );
  const { data, info } = await encoded.toBuffer({ resolveWithObject: true });
  // libwebp merges identical consecutive frames (adding up their delays): count what was written.
  const frames = (info.pages ?? 1) > 1 ? ((await sharp(data).metadata()).pages ?? 1) : 1;
  return {
    name: spec.name,
    format: spec.format,
    contentType: output.contentType,
    width: info.width,
    height: info.pageHeight ?? info.height,
    frames,
    size: data.length,
    body: data,
  };
}
