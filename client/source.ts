/**
 * Something to upload that is not a `Blob`: a file on disk in Node (see `fileSource` in
 * `client/node.ts`), or bytes made on the fly.
 */
export interface UploadSource {
  /** The file name given to the API. */
  name: string;
  size: number;
  /** The declared content type; `''` when unknown (the server then goes by the bytes). */
  type: string;
  /** What identifies this file across runs, for resuming; by default its name, size and date. */
  key?: string;
  /** A fresh stream of the bytes, on every call (a retried upload reads them again). */
  stream(): ReadableStream<Uint8Array>;
  /** The SHA-256 of the bytes in hex; by default Web Crypto over the whole file. */
  sha256?(): Promise<string>;
}

/** A browser `File` or `Blob` (also in Node), or an `UploadSource`. */
export type UploadInput = Blob | UploadSource;

/** An input with every part the uploader needs. */
export interface NormalizedSource {
  name: string;
  size: number;
  type: string;
  key: string;
  stream(): ReadableStream<Uint8Array>;
  sha256(): Promise<string>;
  /** Set for `Blob` inputs: browsers upload a `Blob` with `XMLHttpRequest`, which reports progress. */
  blob: Blob | undefined;
}

const isBlob = (input: UploadInput): input is Blob => typeof Blob !== 'undefined' && input instanceof Blob;

export function normalizeSource(input: UploadInput): NormalizedSource {
  if (isBlob(input)) {
    const file = input as Blob & { name?: string; lastModified?: number; webkitRelativePath?: string };
    const name = file.name || 'file';
    const path = file.webkitRelativePath || name;
    return {
      name,
      size: file.size,
      type: file.type,
      key: `${path}|${file.size}|${file.lastModified ?? ''}`,
      stream: () => file.stream() as ReadableStream<Uint8Array>,
      sha256: async () => hex(await crypto.subtle.digest('SHA-256', await file.arrayBuffer())),
      blob: file,
    };
  }
  return {
    name: input.name,
    size: input.size,
    type: input.type,
    key: input.key ?? `${input.name}|${input.size}`,
    stream: () => input.stream(),
    sha256: input.sha256
      ? () => (input.sha256 as () => Promise<string>)()
      : () => digestStream(input.stream()),
    blob: undefined,
  };
}

/** Web Crypto has no incremental digest: the bytes are gathered, then hashed at once. */
async function digestStream(stream: ReadableStream<Uint8Array>): Promise<string> {
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  return hex(await crypto.subtle.digest('SHA-256', bytes));
}

export function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, '0')).join('');
}
