import type { AvifOptions, JpegOptions, WebpOptions } from 'sharp';
import * as z from 'zod';

const VariantSpecObject = z.object({
  /** Used in the variant's object key and in the API's `variants[].name`. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes, 1-32 long'),
  /** Bounding box in pixels; images are never enlarged to fill it. */
  width: z.number().int().min(1).max(8192),
  height: z.number().int().min(1).max(8192),
  /** `inside`: keep the whole image within the box; `cover`: fill the box, cropping the overflow. */
  fit: z.enum(['inside', 'cover']).default('inside'),
  format: z.enum(['webp', 'jpeg', 'avif']),
  quality: z.number().int().min(1).max(100),
  /**
   * Encoder effort; higher is smaller and slower. webp 0-6 (default 4), avif 0-9 (default 4),
   * jpeg 0-2 (default 1): 0 = libjpeg-turbo with optimised Huffman tables, 1 = mozjpeg (trellis
   * quantisation, overshoot deringing, progressive, quantisation table 3), 2 = 1 plus mozjpeg's
   * scan optimisation (about 0.5% smaller, about 50% slower to encode).
   */
  effort: z.number().int().min(0).max(9).optional(),
});

const MAX_EFFORT: Record<z.output<typeof VariantSpecObject>['format'], number> = {
  webp: 6,
  avif: 9,
  jpeg: 2,
};

/** One output the optimizer makes for every ready image. */
export const VariantSpecSchema = VariantSpecObject.refine(
  (spec) => spec.effort === undefined || spec.effort <= MAX_EFFORT[spec.format],
  { message: 'effort is 0-6 for webp, 0-9 for avif, 0-2 for jpeg', path: ['effort'] },
);

export const VariantSpecsSchema = z
  .array(VariantSpecSchema)
  .min(1)
  .max(10)
  .refine((specs) => new Set(specs.map((s) => s.name)).size === specs.length, 'variant names must be unique');

export type VariantSpec = z.output<typeof VariantSpecSchema>;
export type VariantFormat = VariantSpec['format'];

/**
 * The default set (reasons and measurements in docs/performance.md):
 * - `thumb`: grids and lists; 320 px covers a 160 px cell on 2x screens. WebP: every current browser.
 * - `medium`: the viewer on phones and laptops; 1280 px long side.
 * - `large`: full-HD, as JPEG so that every client, e-mail reader and link preview can show it
 *   (flattened on white where the source had transparency).
 */
export const DEFAULT_VARIANTS: readonly VariantSpec[] = [
  { name: 'thumb', width: 320, height: 320, fit: 'inside', format: 'webp', quality: 75, effort: 4 },
  { name: 'medium', width: 1280, height: 1280, fit: 'inside', format: 'webp', quality: 80, effort: 4 },
  { name: 'large', width: 1920, height: 1080, fit: 'inside', format: 'jpeg', quality: 85, effort: 1 },
];

/** What the pipeline knows of one output format; every format has one row, or nothing compiles. */
interface OutputFormat {
  extension: string;
  contentType: string;
  /** Whether an animated source stays animated in this format. */
  animated: boolean;
  /** Whether transparency is flattened (on white) because the format has none. */
  flatten: boolean;
  /** sharp's encoder options for a spec (`sharp().toFormat(format, options)`). */
  encoder: (spec: VariantSpec) => WebpOptions | JpegOptions | AvifOptions;
}

/**
 * The output formats. JPEG effort: 0 = libjpeg-turbo with optimised Huffman tables, 1 = mozjpeg
 * without scan optimisation (the default), 2 = mozjpeg with it.
 */
export const OUTPUT_FORMATS = {
  webp: {
    extension: 'webp',
    contentType: 'image/webp',
    animated: true,
    flatten: false,
    encoder: (spec) => ({ quality: spec.quality, effort: spec.effort ?? 4 }),
  },
  jpeg: {
    extension: 'jpg',
    contentType: 'image/jpeg',
    animated: false,
    flatten: true,
    encoder: (spec) => {
      switch (spec.effort ?? 1) {
        case 0:
          return { quality: spec.quality, optimiseCoding: true };
        case 1:
          return { quality: spec.quality, mozjpeg: true, optimiseScans: false };
        default:
          return { quality: spec.quality, mozjpeg: true };
      }
    },
  },
  avif: {
    extension: 'avif',
    contentType: 'image/avif',
    animated: false,
    flatten: false,
    encoder: (spec) => ({ quality: spec.quality, effort: spec.effort ?? 4 }),
  },
} as const satisfies Record<VariantFormat, OutputFormat>;
