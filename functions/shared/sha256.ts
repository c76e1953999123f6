import { createHash, createHmac, createSecretKey, type Hash, type Hmac, type KeyObject } from 'node:crypto';
import type { Checksum, SourceData } from '@smithy/types';

/** A key as Node's crypto takes it, without a copy; strings stay strings. */
const keyBytes = (data: SourceData): Buffer | string => {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
};

/**
 * SHA-256 and HMAC-SHA256 for the AWS SDK clients' request signing (`sha256` in a client's
 * configuration); the same digests as the SDK's own (`Sha256` of `@smithy/core/checksum`), which a
 * test holds it to.
 *
 * Why not the SDK's: on Node.js 24 (the Lambda runtime), `createHmac` with a key given as bytes
 * checks whether the key is a `KeyObject` or a `CryptoKey` by throwing and catching twice, which
 * makes one HMAC cost about 30 us instead of 7. SigV4 takes one to five HMACs with byte keys per
 * signed request and per presigned URL (the derived signing key is bytes). A key wrapped once in a
 * `KeyObject` skips those checks: signing 500 upload URLs went from about 90 to 60 ms here
 * (`docs/performance.md`). String keys are not affected and stay strings.
 */
export class Sha256 implements Checksum {
  readonly digestLength = 32;
  readonly #key: KeyObject | string | undefined;
  #hash!: Hash | Hmac;

  constructor(secret?: SourceData) {
    // As the SDK's: an empty string is no key.
    if (secret) {
      const key = keyBytes(secret);
      this.#key = typeof key === 'string' ? key : createSecretKey(key);
    }
    this.reset();
  }

  update(data: Uint8Array | string): void {
    this.#hash.update(data);
  }

  /** As the SDK's: a plain hash can go on after a digest; an HMAC cannot. */
  digest(): Promise<Uint8Array> {
    const digest = this.#key === undefined ? (this.#hash as Hash).copy().digest() : this.#hash.digest();
    return Promise.resolve(new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength));
  }

  reset(): void {
    this.#hash = this.#key === undefined ? createHash('sha256') : createHmac('sha256', this.#key);
  }
}
