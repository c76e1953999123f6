import { createPrivateKey, type KeyObject } from 'node:crypto';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { getSignedUrl } from '@aws-sdk/cloudfront-signer';
import { encodeKeyPath } from './object-keys.ts';
import type { UrlSigner } from './ports.ts';

const HOUR_MS = 3_600_000;
/** Signed policies kept per process (one per image folder and hour, about 0.6 KB each). */
const CACHE_SIZE = 20_000;

export interface CloudFrontUrlSignerOptions {
  /** The distribution's base URL, e.g. `https://d111111abcdef8.cloudfront.net` (no trailing slash). */
  distributionUrl: string;
  /** The bucket the distribution serves; this signer signs GETs of that bucket only. */
  bucket: string;
  /** The id CloudFront gave the public key (it is in the distribution's key group). */
  keyPairId: string;
  /** The PEM private key; called once, on the first URL, and again only after a failure. */
  loadPrivateKey: () => Promise<string>;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

/**
 * Variant URLs signed for CloudFront (trusted key group) instead of presigned for S3. Unlike an S3
 * presigned URL, which dies with the signing role's session credentials, a CloudFront signed URL
 * lives exactly until the expiry in its policy.
 *
 * Each image's folder (`<imageId>/`) gets one custom policy per hour, `Resource: <url>/<imageId>/*`,
 * valid from the start of the hour until `minValiditySeconds` past its end: every variant of the
 * image shares the policy and its one RSA signature (about 1.3 ms each), the URLs stay the same all
 * hour (clients and the edge cache them), and each is valid at least `minValiditySeconds`.
 */
export class CloudFrontUrlSigner implements Pick<UrlSigner, 'presignGet'> {
  readonly #options: CloudFrontUrlSignerOptions;
  readonly #now: () => number;
  #key: Promise<KeyObject> | undefined;
  /** This hour's signed query strings, by folder and expiry. */
  readonly #policies = new Map<string, string>();
  #hour = 0;

  constructor(options: CloudFrontUrlSignerOptions) {
    if (!/^https:\/\/[^/]+$/.test(options.distributionUrl)) {
      throw new TypeError('distributionUrl must be https://<host>, without a path');
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async presignGet(bucket: string, key: string, minValiditySeconds: number): Promise<string> {
    if (bucket !== this.#options.bucket) {
      throw new Error(`CloudFront serves the bucket ${this.#options.bucket}, not ${bucket}`);
    }
    const now = this.#now();
    const hour = Math.floor(now / HOUR_MS);
    if (hour !== this.#hour) {
      this.#policies.clear();
      this.#hour = hour;
    }
    const expiresEpoch = (hour + 1) * (HOUR_MS / 1000) + minValiditySeconds;
    const slash = key.lastIndexOf('/');
    // A key outside a folder gets a policy of its own.
    const resource =
      slash === -1
        ? `${this.#options.distributionUrl}/${encodeKeyPath(key)}`
        : `${this.#options.distributionUrl}/${encodeKeyPath(key.slice(0, slash))}/*`;
    const cacheKey = `${resource}\n${expiresEpoch}`;
    let query = this.#policies.get(cacheKey);
    if (query === undefined) {
      query = await this.#sign(resource, expiresEpoch);
      if (this.#policies.size >= CACHE_SIZE)
        this.#policies.delete(this.#policies.keys().next().value as string);
      this.#policies.set(cacheKey, query);
    }
    return `${this.#options.distributionUrl}/${encodeKeyPath(key)}${query}`;
  }

  /** The `?Policy=...&Signature=...&Key-Pair-Id=...` part for a resource until an epoch second. */
  async #sign(resource: string, expiresEpoch: number): Promise<string> {
    const policy = JSON.stringify({
      Statement: [{ Resource: resource, Condition: { DateLessThan: { 'AWS:EpochTime': expiresEpoch } } }],
    });
    const signed = getSignedUrl({
      policy,
      keyPairId: this.#options.keyPairId,
      // Parsed once: node:crypto signs with a KeyObject wherever it takes a PEM, and skipping the
      // PEM parse makes a signature about 2.5 times faster. The unit test verifies the signatures.
      privateKey: (await this.#privateKey()) as unknown as string,
      algorithm: 'SHA256',
    });
    return signed.slice(signed.indexOf('?'));
  }

  #privateKey(): Promise<KeyObject> {
    if (!this.#key) {
      const loading = this.#options.loadPrivateKey().then((pem) => createPrivateKey(pem));
      // A failure (the secret not readable yet) is not kept: the next URL tries again.
      loading.catch(() => {
        if (this.#key === loading) this.#key = undefined;
      });
      this.#key = loading;
    }
    return this.#key;
  }
}

/** Reads the PEM private key from a Secrets Manager secret (its `SecretString`). */
export function privateKeyFromSecret(client: SecretsManagerClient, secretId: string): () => Promise<string> {
  return async () => {
    const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (!SecretString?.includes('PRIVATE KEY-----')) {
      throw new Error(`The secret ${secretId} holds no PEM private key (see docs/deploy.md)`);
    }
    return SecretString;
  };
}
