import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Event } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PresignedUpload } from '../../../contract/index.ts';
import type { PresignPutRequest } from '../../../functions/shared/storage/ports.ts';
import { S3ObjectStore } from '../../../functions/shared/storage/s3-object-store.ts';
import { S3UrlSigner } from '../../../functions/shared/storage/s3-url-signer.ts';
import { type S3Server, startS3Server } from '../../../local/emulators/s3.ts';
import { localS3Client } from '../../support/local-clients.ts';

const BUCKET = 'presign-test';
const sha256Hex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('presigned URLs against the local S3 server', () => {
  let directory: string;
  let server: S3Server;
  let signer: S3UrlSigner;
  /** The signer's clock: one instant for the whole file. */
  let now: Date;
  let store: S3ObjectStore;
  const events: S3Event[] = [];
  /** What the listener saw when it ran: could the object already be read, in full? */
  const readableAtEvent = new Map<string, Buffer | Error>();

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'presign-'));
    server = await startS3Server({ directory, buckets: [BUCKET], corsAllowedOrigins: ['*'] });
    const client = localS3Client(server.endpoint);
    // One instant for the whole file: the GET URL test does not depend on the hour turning mid-test.
    now = new Date();
    signer = new S3UrlSigner(client, { now: () => now });
    store = new S3ObjectStore(client);
    server.onObjectCreated(async (event) => {
      events.push(event);
      for (const record of event.Records) {
        const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
        const read = await store.get(record.s3.bucket.name, key, 1024 * 1024).then(
          (object) => object.body,
          (error: Error) => error,
        );
        readableAtEvent.set(record.s3.object.key, read);
      }
    });
  });

  afterAll(async () => {
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  const presign = (key: string, body: Buffer, overrides: Partial<PresignPutRequest> = {}) =>
    signer.presignPut({
      bucket: BUCKET,
      key,
      contentType: 'image/jpeg',
      contentLength: body.length,
      sha256Hex: sha256Hex(body),
      expiresInSeconds: 300,
      ...overrides,
    });

  const send = (upload: PresignedUpload, body: Buffer, headers: Record<string, string> = upload.headers) =>
    fetch(upload.url, { method: upload.method, headers, body });

  const eventsFor = (encodedKey: string) =>
    events.flatMap((event) => event.Records).filter((record) => record.s3.object.key === encodedKey);

  it('accepts the upload it was signed for and stores it with its content type', async () => {
    const body = Buffer.from('the exact bytes');
    const upload = await presign('uploads/ok.jpg', body);

    expect(upload.method).toBe('PUT');
    expect(upload.headers).toEqual({
      'content-type': 'image/jpeg',
      'x-amz-checksum-sha256': Buffer.from(sha256Hex(body), 'hex').toString('base64'),
      'x-amz-tagging': 'pipeline-state=incoming',
    });
    const response = await send(upload, body);
    expect(response.status).toBe(200);

    const stored = await store.get(BUCKET, 'uploads/ok.jpg', 1024);
    expect(stored.body.equals(body)).toBe(true);
    expect(stored.contentType).toBe('image/jpeg');
    expect(stored.size).toBe(body.length);
  });

  it('accepts an upload signed without a checksum', async () => {
    const body = Buffer.from('no checksum given');
    const upload = await presign('uploads/no-sum.jpg', body, { sha256Hex: undefined });
    expect(Object.keys(upload.headers).sort()).toEqual(['content-type', 'x-amz-tagging']);

    expect((await send(upload, body)).status).toBe(200);
    expect(await store.head(BUCKET, 'uploads/no-sum.jpg')).toMatchObject({ size: body.length });
  });

  it('refuses another key with 403', async () => {
    const body = Buffer.from('another key');
    const upload = await presign('uploads/mine.jpg', body);
    const url = new URL(upload.url);
    url.pathname = url.pathname.replace('mine.jpg', 'theirs.jpg');

    const response = await send({ ...upload, url: url.href }, body);
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect(await store.head(BUCKET, 'uploads/theirs.jpg')).toBeUndefined();
  });

  it('refuses another content type with 403', async () => {
    const body = Buffer.from('another type');
    const upload = await presign('uploads/type.jpg', body);

    const response = await send(upload, body, { ...upload.headers, 'content-type': 'image/png' });
    expect(response.status).toBe(403);
    expect(await store.head(BUCKET, 'uploads/type.jpg')).toBeUndefined();
  });

  it('refuses a body of another size with 403 (fetch sets content-length from the body)', async () => {
    const body = Buffer.from('twenty bytes exactly');
    const upload = await presign('uploads/size.jpg', body, { sha256Hex: undefined });

    const longer = await send(upload, Buffer.concat([body, Buffer.from('!')]));
    expect(longer.status).toBe(403);
    const shorter = await send(upload, body.subarray(1));
    expect(shorter.status).toBe(403);
    expect(await store.head(BUCKET, 'uploads/size.jpg')).toBeUndefined();
  });

  it('refuses a changed signature with 403, before looking at the digest', async () => {
    const body = Buffer.from('changed signature');
    const upload = await presign('uploads/sig.jpg', body);
    const url = new URL(upload.url);
    const signature = url.searchParams.get('X-Amz-Signature') ?? '';
    url.searchParams.set('X-Amz-Signature', `${signature[0] === 'a' ? 'b' : 'a'}${signature.slice(1)}`);

    expect((await send({ ...upload, url: url.href }, body)).status).toBe(403);
    const wrongBytes = Buffer.from('changed signaturX');
    expect((await send({ ...upload, url: url.href }, wrongBytes)).status).toBe(403);
    expect(await store.head(BUCKET, 'uploads/sig.jpg')).toBeUndefined();
  });

  it('refuses a request without any signature with 403', async () => {
    const body = Buffer.from('anonymous');
    const upload = await presign('uploads/anon.jpg', body);
    const url = new URL(upload.url);
    url.search = '';

    const response = await send({ ...upload, url: url.href }, body);
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('<Code>AccessDenied</Code>');
    expect(await store.head(BUCKET, 'uploads/anon.jpg')).toBeUndefined();
  });

  it('refuses the upload without its signed tagging header with 403', async () => {
    const body = Buffer.from('no tagging');
    const upload = await presign('uploads/tag.jpg', body);
    const { 'x-amz-tagging': _tagging, ...withoutTagging } = upload.headers;

    expect((await send(upload, body, withoutTagging)).status).toBe(403);
    expect(
      (await send(upload, body, { ...upload.headers, 'x-amz-tagging': 'pipeline-state=done' })).status,
    ).toBe(403);
    expect(await store.head(BUCKET, 'uploads/tag.jpg')).toBeUndefined();
  });

  it('refuses an expired URL with 403', async () => {
    const body = Buffer.from('too late');
    // Signed 10 s ago for 1 s: long expired by the endpoint's clock, without waiting for it.
    const upload = await presign('uploads/late.jpg', body, {
      expiresInSeconds: 1,
      signedAt: new Date(Date.now() - 10_000),
    });

    const response = await send(upload, body);
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('Request has expired');
    expect(await store.head(BUCKET, 'uploads/late.jpg')).toBeUndefined();
  });

  it('refuses bytes that do not match the signed checksum with 400 BadDigest and stores nothing', async () => {
    const declared = Buffer.from('the declared bytes');
    const upload = await presign('uploads/digest.jpg', declared);
    const other = Buffer.from('other bytesXXXXXXX');
    expect(other.length).toBe(declared.length);

    const response = await send(upload, other);
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('<Code>BadDigest</Code>');
    expect(await store.head(BUCKET, 'uploads/digest.jpg')).toBeUndefined();
    expect(eventsFor('uploads/digest.jpg')).toEqual([]);
  });

  it('keeps an existing object when a BadDigest upload targets its key', async () => {
    const original = Buffer.from('original content');
    expect((await send(await presign('uploads/keep.jpg', original), original)).status).toBe(200);

    const replacement = Buffer.from('replaced content');
    const upload = await presign('uploads/keep.jpg', original, { contentType: 'image/png' });
    const response = await send(upload, replacement);
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('<Code>BadDigest</Code>');

    const stored = await store.get(BUCKET, 'uploads/keep.jpg', 1024);
    expect(stored.body.equals(original)).toBe(true);
    expect(stored.contentType).toBe('image/jpeg');
    expect(eventsFor('uploads/keep.jpg')).toHaveLength(1);
  });

  it('notifies ObjectCreated with the key URL-encoded as S3 does, once the object is readable', async () => {
    const body = Buffer.from('a key with a space');
    const upload = await presign('uploads/a b.jpg', body);
    expect(new URL(upload.url).pathname).toBe(`/${BUCKET}/uploads/a%20b.jpg`);

    expect((await send(upload, body)).status).toBe(200);

    const records = eventsFor('uploads/a+b.jpg');
    expect(records).toHaveLength(1);
    const [record] = records;
    expect(record?.eventName).toBe('ObjectCreated:Put');
    expect(record?.eventSource).toBe('aws:s3');
    expect(record?.s3.bucket).toMatchObject({ name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` });
    expect(record?.s3.object).toMatchObject({
      size: body.length,
      eTag: createHash('md5').update(body).digest('hex'),
    });
    expect(record?.s3.object.sequencer).toMatch(/^[0-9A-F]+$/);
    // The listener read the object while handling the event: it was already there, in full.
    const seen = readableAtEvent.get('uploads/a+b.jpg');
    expect(Buffer.isBuffer(seen) && seen.equals(body)).toBe(true);
  });

  it('encodes other reserved characters in event keys and keeps slashes', async () => {
    const body = Buffer.from('odd name');
    const key = "uploads/x=1&y (2)+'z'.jpg";
    expect((await send(await presign(key, body), body)).status).toBe(200);

    const [record] = eventsFor('uploads/x%3D1%26y+%282%29%2B%27z%27.jpg');
    expect(record).toBeDefined();
    expect(decodeURIComponent((record?.s3.object.key ?? '').replace(/\+/g, ' '))).toBe(key);
  });

  it('answers a browser preflight for the presigned PUT', async () => {
    const upload = await presign('uploads/cors.jpg', Buffer.from('cors'));
    const response = await fetch(upload.url, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:5173',
        'access-control-request-method': 'PUT',
        'access-control-request-headers': Object.keys(upload.headers).join(','),
      },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-methods')).toContain('PUT');
  });

  it('gives GET URLs that are the same all hour and fetchable with a plain GET', async () => {
    const body = Buffer.from('a variant');
    expect((await send(await presign('variants/v.webp', body), body)).status).toBe(200);

    const url = await signer.presignGet(BUCKET, 'variants/v.webp', 3600);
    expect(await signer.presignGet(BUCKET, 'variants/v.webp', 3600)).toBe(url);

    const params = new URL(url).searchParams;
    expect(params.get('X-Amz-Date')).toMatch(/^\d{8}T\d{2}0000Z$/);
    const signedAt = Date.parse(
      (params.get('X-Amz-Date') ?? '').replace(
        /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/,
        '$1-$2-$3T$4:$5:$6Z',
      ),
    );
    const expiresAt = signedAt + Number(params.get('X-Amz-Expires')) * 1000;
    // At least an hour from when it was asked for, whatever the minute of the hour (not measured
    // against the wall clock, which may have turned the hour since the file's clock was taken).
    expect(expiresAt - now.getTime()).toBeGreaterThanOrEqual(3600 * 1000);

    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(body)).toBe(true);
  });
});
