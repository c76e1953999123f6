import type { Sharp } from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';

/** ThumbHash accepts at most 100x100 pixels. */
const MAX_SIDE = 100;

/**
 * A ThumbHash (base64, about 25-35 bytes) of an upright sRGB pipeline: the client renders it as a
 * blurred preview, alpha included, while the real variant loads.
 */
export async function thumbHashOf(pipeline: Sharp): Promise<string> {
  const { data, info } = await pipeline
    .resize({ width: MAX_SIDE, height: MAX_SIDE, fit: 'inside' })
    .toColourspace('srgb')
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return Buffer.from(rgbaToThumbHash(info.width, info.height, data)).toString('base64');
}
