import { createHash } from 'node:crypto';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Crc32c, Crc64Nvme } from '@aws-sdk/checksums/crc';
import {
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Crc32 } from '@smithy/core/checksum';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../../functions/shared/storage/s3-object-store.ts';
import { type S3Server, startS3Server } from '../../../local/emulators/s3.ts';
import { LOCAL_CREDENTIALS, localS3Client } from '../../support/local-clients.ts';

const BUCKET = 'checksum-test';
const BODY = Buffer.from('the bytes of a photo, or near enough');
const OTHER = Buffer.from('other bytes of the very same length!');

/** A checksum of `body` as the SDK computes it when it sends one (WHEN_SUPPORTED). */
async function sdkChecksum(
  make: () => { update(chunk: Uint8Array): void; digest(): Promise<Uint8Array> },
  body: Buffer,
): Promise<string> {
  const hash = make();
  hash.update(body);
  return Buffer.from(await hash.digest()).toString('base64');
}
const base64Hash = (algorithm: string, body: Buffer) => createHash(algorithm).update(body).digest('base64');

/** Each checksum S3 verifies: the SDK's input field, and its value for BODY and for OTHER. */
const ALGORITHMS = {
  crc32: {
    field: 'ChecksumCRC32',
    right: await sdkChecksum(() => new Crc32(), BODY),
    wrong: await sdkChecksum(() => new Crc32(), OTHER),
  },
  crc32c: {
    field: 'ChecksumCRC32C',
    right: await sdkChecksum(() => new Crc32c(), BODY),
    wrong: await sdkChecksum(() => new Crc32c(), OTHER),
  },
  crc64nvme: {
    field: 'ChecksumCRC64NVME',
    right: await sdkChecksum(() => new Crc64Nvme(), BODY),
    wrong: await sdkChecksum(() => new Crc64Nvme(), OTHER),
  },
  sha1: { field: 'ChecksumSHA1', right: base64Hash('sha1', BODY), wrong: base64Hash('sha1', OTHER) },
  sha256: { field: 'ChecksumSHA256', right: base64Hash('sha256', BODY), wrong: base64Hash('sha256', OTHER) },
} as const;

describe('the local S3 server verifies every checksum a request signs or sends', () => {
  let directory: string;
  let server: S3Server;
  let client: S3Client;
  let store: S3ObjectStore;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'checksums-'));
    server = await startS3Server({ directory, buckets: [BUCKET] });
    client = localS3Client(server.endpoint);
    store = new S3ObjectStore(client);
  });

  afterAll(async () => {
    client?.destroy();
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  const presignedPut = (key: string, extra: Partial<PutObjectCommandInput>, signer = client) =>
    getSignedUrl(
      signer,
      new PutObjectCommand({ Bucket: BUCKET, Key: key, ContentType: 'image/jpeg', ...extra }),
      { expiresIn: 300 },
    );
  const put = (url: string, body: Buffer, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'PUT', headers: { 'content-type': 'image/jpeg', ...headers }, body });

  it('refuses a URL presigned with the SDK default checksum (the CRC32 of an empty body), as S3 does', async () => {
    // The bug of aws-sdk-js-v3#6994: a client left at WHEN_SUPPORTED signs x-amz-checksum-crc32=AAAAAA==.
    const sdkDefault = new S3Client({
      region: 'us-east-1',
      endpoint: server.endpoint,
      forcePathStyle: true,
      credentials: LOCAL_CREDENTIALS,
    });
    const url = await presignedPut('uploads/empty-crc.jpg', {}, sdkDefault);
    sdkDefault.destroy();
    expect(new URL(url).searchParams.get('x-amz-checksum-crc32')).toBe('AAAAAA==');

    const response = await put(url, BODY);
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/<Error>\s*<Code>BadDigest<\/Code>/);
    expect(await store.head(BUCKET, 'uploads/empty-crc.jpg')).toBeUndefined();
  });

  describe.each(Object.entries(ALGORITHMS))(
    'x-amz-checksum-%s',
    (algorithm, { field, right: value, wrong }) => {
      it('signed in the query: the matching body is stored, another is refused with 400 BadDigest', async () => {
        const key = `uploads/query-${algorithm}.jpg`;
        const url = await presignedPut(key, { [field]: value });
        expect(new URL(url).searchParams.get(`x-amz-checksum-${algorithm}`)).toBe(value);

        const refused = await put(url, OTHER);
        expect(refused.status).toBe(400);
        expect(await refused.text()).toContain('<Code>BadDigest</Code>');
        expect(await store.head(BUCKET, key)).toBeUndefined();

        expect((await put(url, BODY)).status).toBe(200);
        expect((await store.get(BUCKET, key, 1024)).body.equals(BODY)).toBe(true);
      });

      it('sent as a header: a mismatch is refused and the stored object is left as it was', async () => {
        const key = `uploads/header-${algorithm}.jpg`;
        await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: BODY, [field]: value }));

        const error = await client
          .send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: OTHER, [field]: value }))
          .catch((e: unknown) => e);
        expect(error).toMatchObject({ name: 'BadDigest', $metadata: { httpStatusCode: 400 } });
        expect((await store.get(BUCKET, key, 1024)).body.equals(BODY)).toBe(true);

        // The value is checked, not merely present: the other bytes' own checksum is accepted.
        await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: OTHER, [field]: wrong }));
        expect((await store.get(BUCKET, key, 1024)).body.equals(OTHER)).toBe(true);
      });
    },
  );

  it('checks a header that differs from the value signed in the query', async () => {
    const url = await presignedPut('uploads/both.jpg', { ChecksumCRC32: ALGORITHMS.crc32.right });
    const response = await put(url, BODY, { 'x-amz-checksum-crc32': ALGORITHMS.crc32.wrong });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('<Code>BadDigest</Code>');
    expect(await store.head(BUCKET, 'uploads/both.jpg')).toBeUndefined();
  });

  it('refuses a malformed checksum, and checksums of two algorithms, with 400 InvalidRequest', async () => {
    const malformed = await presignedPut('uploads/malformed.jpg', { ChecksumCRC32: 'AAAA' });
    const first = await put(malformed, BODY);
    expect(first.status).toBe(400);
    expect(await first.text()).toContain('<Code>InvalidRequest</Code>');

    const two = await presignedPut('uploads/two.jpg', {
      ChecksumCRC32: ALGORITHMS.crc32.right,
      ChecksumSHA256: ALGORITHMS.sha256.right,
    });
    const second = await put(two, BODY);
    expect(second.status).toBe(400);
    expect(await second.text()).toContain('Multiple checksum Types are not allowed');
    expect(await store.head(BUCKET, 'uploads/malformed.jpg')).toBeUndefined();
    expect(await store.head(BUCKET, 'uploads/two.jpg')).toBeUndefined();
  });

  it('refuses a body whose signed payload hash (x-amz-content-sha256) does not match', async () => {
    // The SDK signs the payload's SHA-256 over plain HTTP; swap the body once it is signed.
    const tampering = localS3Client(server.endpoint);
    tampering.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { body: unknown }).body = OTHER;
        return next(args);
      },
      { step: 'deserialize', name: 'swapBodyAfterSigning' },
    );
    const error = await tampering
      .send(new PutObjectCommand({ Bucket: BUCKET, Key: 'uploads/payload.jpg', Body: BODY }))
      .catch((e: unknown) => e);
    tampering.destroy();
    expect(error).toMatchObject({
      name: 'XAmzContentSHA256Mismatch',
      $metadata: { httpStatusCode: 400 },
    });
    expect(await store.head(BUCKET, 'uploads/payload.jpg')).toBeUndefined();
  });

  it('verifies the checksum of a multipart part and keeps no part that fails it', async () => {
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'uploads/multipart.jpg' }),
    );
    const error = await client
      .send(
        new UploadPartCommand({
          Bucket: BUCKET,
          Key: 'uploads/multipart.jpg',
          UploadId,
          PartNumber: 1,
          Body: OTHER,
          ChecksumCRC32: ALGORITHMS.crc32.right,
        }),
      )
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'BadDigest', $metadata: { httpStatusCode: 400 } });
    const partFile = join(directory, BUCKET, '._S3rver_uploads', UploadId ?? '', '1');
    await expect(access(partFile)).rejects.toThrow(/ENOENT/);

    const { ETag } = await client.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: 'uploads/multipart.jpg',
        UploadId,
        PartNumber: 1,
        Body: BODY,
        ChecksumCRC32: ALGORITHMS.crc32.right,
      }),
    );
    expect(ETag).toContain(createHash('md5').update(BODY).digest('hex'));
    await access(partFile);
  });
});
