/** Types for `heic-decode` 2.x (libheif compiled to WebAssembly), which ships none. */
declare module 'heic-decode' {
  interface DecodedHeifImage {
    width: number;
    height: number;
    /** RGBA, 8 bits per channel, rows top to bottom; transforms (`irot`, `imir`, `clap`) applied. */
    data: Uint8ClampedArray;
  }

  interface HeifImageHandle {
    /** Of the displayed image, read from the container without decoding. */
    width: number;
    height: number;
    decode(): Promise<DecodedHeifImage>;
  }

  interface HeicDecode {
    (input: { buffer: Uint8Array }): Promise<DecodedHeifImage>;
    /** Parses the container only; call `dispose()` when done to free the WebAssembly memory. */
    all(input: { buffer: Uint8Array }): Promise<HeifImageHandle[] & { dispose(): void }>;
  }

  const decode: HeicDecode;
  export default decode;
}
