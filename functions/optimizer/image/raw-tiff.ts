/**
 * Wraps 8-bit RGB or RGBA pixels in a minimal uncompressed TIFF that carries an ICC profile.
 *
 * sharp cannot assign an input profile to raw pixels (lovell/sharp#1324). The optimizer needs that
 * twice: for pixels decoded outside libvips (HEVC HEIF, e.g. Display P3 iPhone photos), and to
 * convert a photo to sRGB after shrinking it rather than before (the profile conversion costs as
 * much as the decode at full size). Inside a TIFF with tag 34675, libvips converts the pixels from
 * their real profile to sRGB like any other input; incompatible or broken profiles are ignored. The
 * cost is one copy of the pixels, no encoding.
 */
export function rawToTiff(
  pixels: Uint8Array | Uint8ClampedArray,
  width: number,
  height: number,
  channels: 3 | 4,
  icc: Uint8Array,
): Buffer {
  if (pixels.byteLength !== width * height * channels) throw new RangeError('pixel buffer size mismatch');
  const rowBytes = width * channels;
  const rowsPerStrip = Math.max(1, Math.floor((256 * 1024) / rowBytes));
  const strips = Math.ceil(height / rowsPerStrip);

  interface Entry {
    tag: number;
    type: 3 | 4 | 7; // SHORT, LONG, UNDEFINED
    values: readonly number[] | Uint8Array;
  }
  const stripOffsets = new Array<number>(strips).fill(0);
  const stripByteCounts = Array.from({ length: strips }, (_, i) => {
    const rows = Math.min(rowsPerStrip, height - i * rowsPerStrip);
    return rows * rowBytes;
  });
  const entries: Entry[] = [
    { tag: 256, type: 4, values: [width] }, // ImageWidth
    { tag: 257, type: 4, values: [height] }, // ImageLength
    { tag: 258, type: 3, values: new Array<number>(channels).fill(8) }, // BitsPerSample
    { tag: 259, type: 3, values: [1] }, // Compression: none
    { tag: 262, type: 3, values: [2] }, // PhotometricInterpretation: RGB
    { tag: 273, type: 4, values: stripOffsets }, // StripOffsets (filled in below)
    { tag: 277, type: 3, values: [channels] }, // SamplesPerPixel
    { tag: 278, type: 4, values: [rowsPerStrip] }, // RowsPerStrip
    { tag: 279, type: 4, values: stripByteCounts }, // StripByteCounts
    { tag: 284, type: 3, values: [1] }, // PlanarConfiguration: chunky
    ...(channels === 4 ? [{ tag: 338, type: 3 as const, values: [2] }] : []), // ExtraSamples: unassociated alpha
    { tag: 34675, type: 7, values: icc }, // ICC profile
  ];
  const unit = (type: Entry['type']) => (type === 3 ? 2 : type === 4 ? 4 : 1);
  const byteLength = (e: Entry) => e.values.length * unit(e.type);

  const ifdOffset = 8;
  const ifdSize = 2 + entries.length * 12 + 4;
  // Values longer than 4 bytes live after the IFD, each at an even offset.
  let cursor = ifdOffset + ifdSize;
  const outOfLine = new Map<Entry, number>();
  for (const e of entries) {
    if (byteLength(e) > 4) {
      outOfLine.set(e, cursor);
      cursor += byteLength(e) + (byteLength(e) % 2);
    }
  }
  const pixelOffset = cursor;
  for (let i = 0; i < strips; i++) stripOffsets[i] = pixelOffset + i * rowsPerStrip * rowBytes;

  const out = Buffer.allocUnsafe(pixelOffset + pixels.byteLength);
  out.fill(0, 0, pixelOffset);
  out.write('II', 0, 'latin1');
  out.writeUInt16LE(42, 2);
  out.writeUInt32LE(ifdOffset, 4);
  out.writeUInt16LE(entries.length, ifdOffset);
  const writeValues = (e: Entry, at: number) => {
    if (e.values instanceof Uint8Array) {
      out.set(e.values, at);
      return;
    }
    e.values.forEach((v, i) => {
      if (e.type === 3) out.writeUInt16LE(v, at + i * 2);
      else out.writeUInt32LE(v, at + i * 4);
    });
  };
  entries.forEach((e, i) => {
    const at = ifdOffset + 2 + i * 12;
    out.writeUInt16LE(e.tag, at);
    out.writeUInt16LE(e.type, at + 2);
    out.writeUInt32LE(e.values.length, at + 4);
    const offset = outOfLine.get(e);
    if (offset === undefined) writeValues(e, at + 8);
    else {
      out.writeUInt32LE(offset, at + 8);
      writeValues(e, offset);
    }
  });
  out.writeUInt32LE(0, ifdOffset + 2 + entries.length * 12); // no next IFD
  out.set(pixels, pixelOffset);
  return out;
}
