import { z } from 'zod';

/** One output the optimizer makes for every ready image. */
export const VariantSpecSchema = z.object({
  /** Used in the variant's object key and in the API's `variants[].name`. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes, 1-32 long'),
  /** Bounding box in pixels; images are never enlarged to fill it. */
  width: z.number().int().min(1).max(8192),
  height: z.number().int().min(1).max(8192),
  /** `inside`: keep the whole image within the box; `cover`: fill the box, cropping the overflow. */
  fit: z.enum(['inside', 'cover']).default('inside'),
  format: z.enum(['webp', 'jpeg', 'avif']),
  quality: z.number().int().min(1).max(100),
  /** Encoder effort (webp 0-6, avif 0-9); higher is smaller and slower. */
  effort: z.number().int().min(0).max(9).optional(),
});

export const VariantSpecsSchema = z
  .array(VariantSpecSchema)
  .min(1)
  .max(10)
  .refine((specs) => new Set(specs.map((s) => s.name)).size === specs.length, 'variant names must be unique');

export type VariantSpec = z.output<typeof VariantSpecSchema>;
export type VariantFormat = VariantSpec['format'];

/**
 * The default set: a small WebP for grids and lists, a screen-sized WebP for viewing, and a JPEG
 * that every client and email reader can show.
 */
export const DEFAULT_VARIANTS: readonly VariantSpec[] = [
  { name: 'thumb', width: 320, height: 320, fit: 'inside', format: 'webp', quality: 75, effort: 4 },
  { name: 'medium', width: 1280, height: 1280, fit: 'inside', format: 'webp', quality: 80, effort: 4 },
  { name: 'large', width: 1920, height: 1080, fit: 'inside', format: 'jpeg', quality: 85 },
];

export const CONTENT_TYPES: Record<VariantFormat, string> = {
  webp: 'image/webp',
  jpeg: 'image/jpeg',
  avif: 'image/avif',
};
