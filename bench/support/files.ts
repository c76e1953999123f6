import { createHash, randomBytes } from 'node:crypto';

/** A file as a client declares it in `POST /v1/uploads`. */
export interface DeclaredFile {
  name: string;
  type: string;
  size: number;
  sha256: string;
}

const pick = <T>(items: readonly T[], random: () => number): T =>
  items[Math.floor(random() * items.length)] as T;

/** A deterministic PRNG (mulberry32), so every run declares the same mix of names and sizes. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MB = 1_000_000;

/**
 * What a phone or camera roll export looks like: mostly JPEG and HEIC photos of 1.5-7 MB, some PNG
 * screenshots and WebP downloads, with the names those devices give them. Every file gets its own
 * random sha256, so none is a duplicate of another (or of an earlier run's).
 */
export function realisticFiles(count: number, seed: number): DeclaredFile[] {
  const random = seeded(seed);
  const size = (min: number, max: number) => Math.round(min + random() * (max - min));
  const number = (digits: number) => String(Math.floor(random() * 10 ** digits)).padStart(digits, '0');
  const twoDigits = (min: number, max: number) => String(size(min, max)).padStart(2, '0');
  const date = () => `2024${twoDigits(1, 12)}${twoDigits(1, 28)}`;
  return Array.from({ length: count }, () => {
    const roll = random();
    const sha256 = randomBytes(32).toString('hex');
    if (roll < 0.55) {
      const name = pick(
        [`IMG_${number(4)}.JPG`, `DSC_${number(4)}.JPG`, `PXL_${date()}_${number(9)}.jpg`],
        random,
      );
      return { name, type: 'image/jpeg', size: size(1.5 * MB, 7 * MB), sha256 };
    }
    if (roll < 0.8)
      return { name: `IMG_${number(4)}.HEIC`, type: 'image/heic', size: size(1 * MB, 4 * MB), sha256 };
    if (roll < 0.92) {
      const name = `Screenshot ${date()} at ${number(2)}.${number(2)}.${number(2)}.png`;
      return { name, type: 'image/png', size: size(0.2 * MB, 3 * MB), sha256 };
    }
    return { name: `download (${number(2)}).webp`, type: 'image/webp', size: size(50_000, 900_000), sha256 };
  });
}

/**
 * A valid JPEG made unique: a COM (comment) segment with `tag` inserted right after SOI. Decoders
 * ignore comments, so the image is the same; its bytes and sha256 are not.
 */
export function uniqueJpeg(jpeg: Buffer, tag: string): Buffer {
  if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) throw new Error('not a JPEG (no SOI marker)');
  const text = Buffer.from(tag, 'latin1');
  if (text.length > 65_533) throw new Error('comment too long');
  const segment = Buffer.alloc(4 + text.length);
  segment.writeUInt16BE(0xfffe, 0);
  segment.writeUInt16BE(text.length + 2, 2);
  text.copy(segment, 4);
  return Buffer.concat([jpeg.subarray(0, 2), segment, jpeg.subarray(2)]);
}

export const sha256Hex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
