/** The storage ports: what the use cases need of an object store and of a URL signer. */
import type { PresignedUpload } from '../../../contract/index.ts';

export interface PresignPutRequest {
  bucket: string;
  key: string;
  contentType: string;
  contentLength: number;
  /** The file's SHA-256 as 64 hex characters; when given, storage refuses other bytes. */
  sha256Hex?: string | undefined;
  expiresInSeconds: number;
  /**
   * When the URL's lifetime starts (default: now). SigV4 dates have whole seconds, so a caller that
   * tells users when the URL expires passes a whole second and adds `expiresInSeconds` to it.
   */
  signedAt?: Date;
}

export interface UrlSigner {
  /** A URL that accepts one PUT of this key, type, length (and checksum), until it expires. */
  presignPut(request: PresignPutRequest): Promise<PresignedUpload>;
  /** A URL that serves the object to a plain GET for at least `minValiditySeconds`. */
  presignGet(bucket: string, key: string, minValiditySeconds: number): Promise<string>;
}

export interface StoredObject {
  body: Buffer;
  contentType: string | undefined;
  size: number;
  /** The object's ETag, without quotes. */
  etag: string | undefined;
}

export interface ObjectHead {
  size: number;
  lastModified: Date;
}

export interface ObjectStore {
  /** Reads a whole object; refuses (without reading it) one larger than `maxBytes`. */
  get(bucket: string, key: string, maxBytes: number): Promise<StoredObject>;
  /** The object's size and age, or `undefined` when there is no such object. */
  head(bucket: string, key: string): Promise<ObjectHead | undefined>;
  put(
    bucket: string,
    key: string,
    body: Buffer,
    contentType: string,
    tag?: { key: string; value: string },
  ): Promise<void>;
  /**
   * Copies an object inside the store (no bytes pass through the caller) if it still has the ETag
   * it was read with; false, copying nothing, when it has changed or gone since.
   */
  copyIfUnchanged(
    from: { bucket: string; key: string; etag: string },
    to: { bucket: string; key: string },
    contentType: string,
    tag?: { key: string; value: string },
  ): Promise<boolean>;
  /** Removes the objects; absent keys are not an error. */
  delete(bucket: string, keys: readonly string[]): Promise<void>;
  /** Removes every object under a prefix. */
  deleteUnder(bucket: string, prefix: string): Promise<void>;
  /** Keys under a prefix, page by page. */
  list(bucket: string, prefix: string): AsyncIterable<string>;
}

/**
 * When an upload URL signed now stops working: its signing time is `now` cut to the whole second
 * (what SigV4 signs), so the `expiresAt` told to users is exactly the URL's own expiry, never later.
 */
export function uploadWindow(now: Date, ttlSeconds: number): { signedAt: Date; expiresAt: string } {
  const signedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
  return { signedAt, expiresAt: new Date(signedAt.getTime() + ttlSeconds * 1000).toISOString() };
}
