import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import S3Error from '@20minutes/s3rver/lib/models/error.js';
import { Crc32c, Crc64Nvme } from '@aws-sdk/checksums/crc';
import { Crc32 } from '@smithy/core/checksum';

/** The additional checksums S3 verifies on upload, with their digest sizes. */
const DIGEST_BYTES = { crc32: 4, crc32c: 4, crc64nvme: 8, sha1: 20, sha256: 32 } as const;
export type ChecksumAlgorithm = keyof typeof DIGEST_BYTES;
const ALGORITHMS = Object.keys(DIGEST_BYTES) as ChecksumAlgorithm[];
const PREFIX = 'x-amz-checksum-';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** One `x-amz-checksum-<algorithm>` value a request carries. */
export interface DeclaredChecksum {
  algorithm: ChecksumAlgorithm;
  value: string;
  /** Signed into a presigned URL's query, or sent as a header. */
  source: 'query' | 'header';
}

/**
 * Every `x-amz-checksum-*` value of a request, from its query and its headers. Read before
 * s3rver's authentication, which copies query `x-amz-*` values over the headers (so a header
 * that differs from the signed query value would otherwise go unchecked).
 */
export function declaredChecksums(
  query: Record<string, string | string[] | undefined>,
  headers: IncomingHttpHeaders,
): DeclaredChecksum[] {
  const found: DeclaredChecksum[] = [];
  const collect = (
    source: DeclaredChecksum['source'],
    name: string,
    value: string | string[] | undefined,
  ) => {
    const algorithm = name.toLowerCase().slice(PREFIX.length);
    if (!name.toLowerCase().startsWith(PREFIX) || !isAlgorithm(algorithm) || value === undefined) return;
    for (const one of Array.isArray(value) ? value : [value]) found.push({ algorithm, value: one, source });
  };
  for (const [name, value] of Object.entries(query)) collect('query', name, value);
  for (const [name, value] of Object.entries(headers)) collect('header', name, value);
  return found;
}

const isAlgorithm = (name: string): name is ChecksumAlgorithm => (ALGORITHMS as string[]).includes(name);

/**
 * Refuses, as S3 does, a checksum that is not the base64 of a digest of its algorithm's size
 * (`400 InvalidRequest`), and checksums of more than one algorithm in one request.
 */
export function checkChecksumForm(declared: readonly DeclaredChecksum[]): void {
  for (const { algorithm, value } of declared) {
    const bytes = BASE64.test(value) && value.length % 4 === 0 ? Buffer.from(value, 'base64') : undefined;
    if (bytes?.length !== DIGEST_BYTES[algorithm] || bytes.toString('base64') !== value) {
      throw new S3Error('InvalidRequest', `Value for ${PREFIX}${algorithm} header is invalid.`);
    }
  }
  if (new Set(declared.map((checksum) => checksum.algorithm)).size > 1) {
    throw new S3Error(
      'InvalidRequest',
      'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
    );
  }
}

interface Digest {
  update(chunk: Uint8Array): void;
  digest(): Promise<Uint8Array>;
}

function digestFor(algorithm: ChecksumAlgorithm): Digest {
  switch (algorithm) {
    case 'sha1':
    case 'sha256': {
      const hash = createHash(algorithm);
      return { update: (chunk) => hash.update(chunk), digest: async () => hash.digest() };
    }
    case 'crc32':
      return new Crc32();
    case 'crc32c':
      return new Crc32c();
    case 'crc64nvme':
      return new Crc64Nvme();
  }
}

/**
 * Computes, over the bytes fed to `update`, each algorithm the request declared (with the SDK's
 * own checksum implementations), and `verify` throws `400 BadDigest` unless every declared value
 * matches.
 */
export function checksumVerifier(declared: readonly DeclaredChecksum[]) {
  const digests = new Map<ChecksumAlgorithm, Digest>();
  for (const { algorithm } of declared)
    if (!digests.has(algorithm)) digests.set(algorithm, digestFor(algorithm));
  return {
    update(chunk: Uint8Array): void {
      for (const digest of digests.values()) digest.update(chunk);
    },
    async verify(): Promise<void> {
      const computed = new Map<ChecksumAlgorithm, string>();
      for (const [algorithm, digest] of digests) {
        computed.set(algorithm, Buffer.from(await digest.digest()).toString('base64'));
      }
      for (const { algorithm, value } of declared) {
        if (computed.get(algorithm) !== value) {
          throw new S3Error(
            'BadDigest',
            `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`,
          );
        }
      }
    },
  };
}
