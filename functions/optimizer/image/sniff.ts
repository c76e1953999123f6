/** The input formats the optimizer accepts, named as the API reports them. */
export type SourceFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif' | 'heif';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const AVIF_BRANDS = new Set(['avif', 'avis']);
const HEIC_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx']);
/** Generic HEIF brands: the codec is named by the compatible brands (or, later, by the decoder). */
const HEIF_BRANDS = new Set(['mif1', 'msf1', 'mif2', 'miaf']);

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  if (bytes.length < at + prefix.length) return false;
  return prefix.every((b, i) => bytes[at + i] === b);
}

function ascii(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...bytes.subarray(start, end));
}

/** Classifies an ISO-BMFF file by its `ftyp` box: AVIF, HEIF/HEIC, or something else (video, JPEG 2000...). */
function sniffIsoBmff(bytes: Uint8Array): SourceFormat | undefined {
  if (bytes.length < 16 || ascii(bytes, 4, 8) !== 'ftyp') return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const boxSize = Math.min(view.getUint32(0), bytes.length);
  const major = ascii(bytes, 8, 12);
  const compatible: string[] = [];
  for (let at = 16; at + 4 <= boxSize; at += 4) compatible.push(ascii(bytes, at, at + 4));
  if (AVIF_BRANDS.has(major)) return 'avif';
  if (HEIC_BRANDS.has(major)) return 'heif';
  if (!HEIF_BRANDS.has(major) && !compatible.some((b) => HEIF_BRANDS.has(b))) return undefined;
  if (compatible.some((b) => AVIF_BRANDS.has(b))) return 'avif';
  return 'heif';
}

/**
 * The real format of untrusted bytes, read from their magic numbers only (never from a name or a
 * declared type), or `undefined` for anything the optimizer does not accept: SVG, PDF, PostScript,
 * MVG, text, HTML, BigTIFF, video...
 */
export function sniffFormat(bytes: Uint8Array): SourceFormat | undefined {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(bytes, PNG_SIGNATURE)) return 'png';
  if (bytes.length >= 6 && (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a')) return 'gif';
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 12) === 'WEBP') return 'webp';
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a]))
    return 'tiff';
  return sniffIsoBmff(bytes);
}
