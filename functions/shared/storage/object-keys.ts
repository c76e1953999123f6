import type { Config } from '../config.ts';
import { DEFAULT_VARIANTS, type VariantFormat, type VariantSpec } from '../variants.ts';

const EXTENSIONS: Record<VariantFormat, string> = { webp: 'webp', jpeg: 'jpg', avif: 'avif' };

/** The configured variant set, or the default one. */
export const variantSpecs = (config: Config): readonly VariantSpec[] =>
  config.processing.variants ?? DEFAULT_VARIANTS;

export const variantFileName = (spec: Pick<VariantSpec, 'name' | 'format'>) =>
  `${spec.name}.${EXTENSIONS[spec.format]}`;

export const variantFileNames = (specs: readonly VariantSpec[]) => specs.map(variantFileName);

/** A variant's key in the variants bucket: one folder per image. */
export const variantKey = (imageId: string, spec: Pick<VariantSpec, 'name' | 'format'>) =>
  `${imageId}/${variantFileName(spec)}`;
