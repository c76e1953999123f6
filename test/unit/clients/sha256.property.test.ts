import { Sha256 as SdkSha256 } from '@smithy/core/checksum';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDocumentClient, createS3Client } from '../../../functions/shared/clients.ts';
import { parseConfig } from '../../../functions/shared/config.ts';
import { Sha256 } from '../../../functions/shared/sha256.ts';
import { createSqsClient } from '../../../functions/shared/sqs-client.ts';

/** Fixed, so a failure reproduces. */
const SEED = 20_261_201;

/** Bytes in every form the SDK hands a hash: strings, byte arrays, views into a larger buffer. */
const chunk = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.uint8Array({ maxLength: 80 }),
  fc
    .tuple(fc.uint8Array({ minLength: 8, maxLength: 80 }), fc.nat(7))
    .map(([bytes, offset]) => new Uint8Array(bytes.buffer, offset, bytes.length - offset)),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
);
const secret = fc.option(fc.oneof(fc.string({ maxLength: 48 }), fc.uint8Array({ maxLength: 80 })), {
  nil: undefined,
});

async function digests(
  Hash: new (
    secret?: unknown,
  ) => { update(data: unknown): void; digest(): Promise<Uint8Array>; reset(): void },
  key: unknown,
  chunks: unknown[],
) {
  const hash = new Hash(key);
  for (const data of chunks) hash.update(data);
  const first = Buffer.from(await hash.digest()).toString('hex');
  // A plain hash goes on after a digest (the SDK streams checksums so); an HMAC is done.
  if (key === undefined) hash.update('more');
  const second = key === undefined ? Buffer.from(await hash.digest()).toString('hex') : undefined;
  hash.reset();
  for (const data of chunks.slice().reverse()) hash.update(data);
  const afterReset = Buffer.from(await hash.digest()).toString('hex');
  return [first, second, afterReset];
}

describe('Sha256, the clients’ signing hash', () => {
  it('gives the SDK’s own digests and HMACs for any key and input', async () => {
    await fc.assert(
      fc.asyncProperty(secret, fc.array(chunk, { maxLength: 6 }), async (key, chunks) => {
        expect(await digests(Sha256 as never, key, chunks)).toEqual(
          await digests(SdkSha256 as never, key, chunks),
        );
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('is what every client the functions build signs with', () => {
    const config = parseConfig({ TABLE_NAME: 't', UPLOAD_BUCKET: 'u', VARIANTS_BUCKET: 'v' });
    const s3 = createS3Client(config);
    const dynamo = createDocumentClient(config);
    const sqs = createSqsClient(config);
    expect([s3.config.sha256, dynamo.config.sha256, sqs.config.sha256]).toEqual([Sha256, Sha256, Sha256]);
    for (const client of [s3, dynamo, sqs]) client.destroy();
  });
});
