import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { INCOMING_TAG, S3UrlSigner } from '../../../functions/shared/storage/s3-url-signer.ts';

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
const CLIENTS = {
  'AWS (virtual-hosted)': () => new S3Client({ region: 'eu-west-1', credentials }),
  'S3-compatible (path-style)': () =>
    new S3Client({
      region: 'us-east-1',
      credentials,
      endpoint: 'http://127.0.0.1:4569',
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    }),
};
const KEY = 'uploads/01JAAAAAAAAAAAAAAAAAAAAAAA/01JBBBBBBBBBBBBBBBBBBBBBBB';
const SHA = 'ab'.repeat(32);

afterEach(() => {
  vi.useRealTimers();
});

/**
 * The signer signs copies of one SDK-built request instead of calling getSignedUrl per URL; its
 * URLs must be exactly getSignedUrl's, for AWS and for S3-compatible endpoints alike.
 */
describe.each(Object.entries(CLIENTS))('S3UrlSigner on %s', (_, makeClient) => {
  it('presigns GETs exactly as getSignedUrl does, stable for the hour', async () => {
    vi.useFakeTimers({ now: new Date('2026-11-26T10:17:00Z'), toFake: ['Date'] });
    const client = makeClient();
    const signer = new S3UrlSigner(client);
    const url = await signer.presignGet('variants-bucket', '01JBBBBBBBBBBBBBBBBBBBBBBB/thumb.webp', 3600);
    const expected = await getSignedUrl(
      client,
      new GetObjectCommand({ Bucket: 'variants-bucket', Key: '01JBBBBBBBBBBBBBBBBBBBBBBB/thumb.webp' }),
      { expiresIn: 7200, signingDate: new Date('2026-11-26T10:00:00Z') },
    );
    expect(url).toBe(expected);
    vi.setSystemTime(new Date('2026-11-26T10:59:59Z'));
    expect(await signer.presignGet('variants-bucket', '01JBBBBBBBBBBBBBBBBBBBBBBB/thumb.webp', 3600)).toBe(
      url,
    );
  });

  it.each([
    ['with a checksum', SHA],
    ['without a checksum', undefined],
  ])('presigns PUTs %s exactly as getSignedUrl does', async (_, sha256Hex) => {
    vi.useFakeTimers({ now: new Date('2026-11-26T10:17:00Z'), toFake: ['Date'] });
    const client = makeClient();
    const signer = new S3UrlSigner(client);
    // A first URL builds the template; the second (another key, type, size) must still be exact.
    await signer.presignPut({
      bucket: 'uploads-bucket',
      key: `${KEY}-first`,
      contentType: 'image/png',
      contentLength: 1,
      sha256Hex,
      expiresInSeconds: 900,
    });
    const upload = await signer.presignPut({
      bucket: 'uploads-bucket',
      key: KEY,
      contentType: 'image/jpeg',
      contentLength: 2_483_211,
      sha256Hex,
      expiresInSeconds: 900,
    });
    const checksum = sha256Hex ? Buffer.from(sha256Hex, 'hex').toString('base64') : undefined;
    const expected = await getSignedUrl(
      client,
      new PutObjectCommand({
        Bucket: 'uploads-bucket',
        Key: KEY,
        ContentType: 'image/jpeg',
        ContentLength: 2_483_211,
        ...(checksum ? { ChecksumSHA256: checksum } : {}),
        Tagging: `${INCOMING_TAG.key}=${INCOMING_TAG.value}`,
      }),
      {
        expiresIn: 900,
        signableHeaders: new Set(['content-type', 'content-length']),
        unhoistableHeaders: new Set(['x-amz-checksum-sha256', 'x-amz-tagging']),
      },
    );
    expect(upload.url).toBe(expected);
    expect(upload.headers).toEqual({
      'content-type': 'image/jpeg',
      'x-amz-tagging': 'pipeline-state=incoming',
      ...(checksum ? { 'x-amz-checksum-sha256': checksum } : {}),
    });
  });
});
