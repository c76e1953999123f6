import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PresignedUpload } from '../../../contract/index.ts';
import { S3UrlSigner } from '../../../functions/shared/storage/s3-url-signer.ts';
import { startS3Server } from '../../../local/emulators/s3.ts';
import { type Gateway, startGateway } from '../../../local/glue/gateway.ts';
import { readLocalSettings } from '../../../local/settings.ts';
import { localS3Client } from '../../support/local-clients.ts';

const BUCKET = 'cors-test';
const PAGE = 'http://localhost:5173';
const BODY = Buffer.from('bytes from a browser');
const sha256Hex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** What a browser sends before a cross-origin PUT with the upload's headers. */
const preflight = (url: string, origin: string, method: string, headers: readonly string[]) =>
  fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      ...(headers.length > 0 && { 'access-control-request-headers': headers.join(',') }),
    },
  });

async function startStorage(corsAllowedOrigins: readonly string[]) {
  const directory = await mkdtemp(join(tmpdir(), 'cors-'));
  const server = await startS3Server({ directory, buckets: [BUCKET], corsAllowedOrigins });
  const client = localS3Client(server.endpoint);
  const signer = new S3UrlSigner(client);
  return {
    server,
    signer,
    presign: (key: string, body = BODY) =>
      signer.presignPut({
        bucket: BUCKET,
        key,
        contentType: 'image/jpeg',
        contentLength: body.length,
        sha256Hex: sha256Hex(body),
        expiresInSeconds: 300,
      }),
    async stop() {
      client.destroy();
      await server.stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

const put = (upload: PresignedUpload, origin: string, body = BODY) =>
  fetch(upload.url, { method: 'PUT', headers: { ...upload.headers, origin }, body });

describe('the local storage endpoint for pages on other origins (CORS)', () => {
  describe('by default (any origin)', () => {
    let storage: Awaited<ReturnType<typeof startStorage>>;
    beforeAll(async () => {
      storage = await startStorage(readLocalSettings({}).corsAllowedOrigins);
    });
    afterAll(() => storage?.stop());

    it('answers the preflight of a presigned PUT with every header the upload sends', async () => {
      const upload = await storage.presign('uploads/preflight.jpg');
      const sent = Object.keys(upload.headers);
      expect(sent).toEqual(
        expect.arrayContaining(['content-type', 'x-amz-checksum-sha256', 'x-amz-tagging']),
      );

      const response = await preflight(upload.url, PAGE, 'PUT', sent);
      expect(response.status).toBe(200);
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      const methods = (response.headers.get('access-control-allow-methods') ?? '').split(/,\s*/);
      expect(methods).toEqual(expect.arrayContaining(['PUT', 'GET', 'HEAD']));
      const allowed = (response.headers.get('access-control-allow-headers') ?? '').split(/,\s*/);
      expect(allowed).toEqual(expect.arrayContaining(sent));
      expect(Number(response.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    });

    it('lets the page read the PUT response, its ETag, and the error XML of a refused upload', async () => {
      const upload = await storage.presign('uploads/put.jpg');
      const accepted = await put(upload, PAGE);
      expect(accepted.status).toBe(200);
      expect(accepted.headers.get('access-control-allow-origin')).toBe('*');
      expect(accepted.headers.get('access-control-expose-headers')).toMatch(/\betag\b/i);
      expect(accepted.headers.get('etag')).toBe(`"${createHash('md5').update(BODY).digest('hex')}"`);

      const other = Buffer.from('bytes from a browseR');
      const refused = await put(await storage.presign('uploads/refused.jpg'), PAGE, other);
      expect(refused.status).toBe(400);
      expect(refused.headers.get('access-control-allow-origin')).toBe('*');
      expect(await refused.text()).toContain('<Code>BadDigest</Code>');

      const unsigned = await fetch(new URL(upload.url).origin + new URL(upload.url).pathname, {
        headers: { origin: PAGE },
      });
      expect(unsigned.status).toBe(403);
      expect(unsigned.headers.get('access-control-allow-origin')).toBe('*');
    });

    it('lets the page GET a variant with its presigned URL', async () => {
      expect((await put(await storage.presign('variants/v.webp'), PAGE)).status).toBe(200);
      const url = await storage.signer.presignGet(BUCKET, 'variants/v.webp', 3600);
      expect((await preflight(url, PAGE, 'GET', [])).status).toBe(200);
      const response = await fetch(url, { headers: { origin: PAGE } });
      expect(response.status).toBe(200);
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(Buffer.from(await response.arrayBuffer()).equals(BODY)).toBe(true);
    });

    it('refuses a preflight for a method a page has no use for', async () => {
      const upload = await storage.presign('uploads/delete.jpg');
      const response = await preflight(upload.url, PAGE, 'DELETE', []);
      expect(response.status).toBe(403);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  describe('with CORS_ALLOWED_ORIGINS set', () => {
    const ALLOWED = 'https://photos.example';
    let storage: Awaited<ReturnType<typeof startStorage>>;
    beforeAll(async () => {
      const settings = readLocalSettings({ CORS_ALLOWED_ORIGINS: `${ALLOWED}, http://localhost:8080` });
      expect(settings.corsAllowedOrigins).toEqual([ALLOWED, 'http://localhost:8080']);
      storage = await startStorage(settings.corsAllowedOrigins);
    });
    afterAll(() => storage?.stop());

    it('allows exactly those origins, naming the origin rather than *', async () => {
      const upload = await storage.presign('uploads/allowed.jpg');
      const ok = await preflight(upload.url, ALLOWED, 'PUT', Object.keys(upload.headers));
      expect(ok.status).toBe(200);
      expect(ok.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      expect(ok.headers.get('vary')).toMatch(/\borigin\b/i);

      const denied = await preflight(upload.url, PAGE, 'PUT', Object.keys(upload.headers));
      expect(denied.status).toBe(403);
      expect(denied.headers.get('access-control-allow-origin')).toBeNull();

      const fromAllowed = await put(upload, ALLOWED);
      expect(fromAllowed.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      const fromOther = await put(await storage.presign('uploads/other.jpg'), PAGE);
      expect(fromOther.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  it('refuses an origin setting that is not an origin', () => {
    expect(() => readLocalSettings({ CORS_ALLOWED_ORIGINS: 'https://photos.example/' })).toThrow(
      /CORS_ALLOWED_ORIGINS/,
    );
    expect(() => readLocalSettings({ CORS_ALLOWED_ORIGINS: ' , ' })).toThrow(/CORS_ALLOWED_ORIGINS/);
  });
});

describe('the local API gateway uses the same CORS setting', () => {
  const startWith = (corsAllowedOrigins: readonly string[]) =>
    startGateway({
      port: 0,
      corsAllowedOrigins,
      handler: async () => ({ statusCode: 200, body: '{"status":"ok"}' }),
      onError: () => {},
    });
  let open: Gateway;
  let restricted: Gateway;
  beforeAll(async () => {
    open = await startWith(readLocalSettings({}).corsAllowedOrigins);
    restricted = await startWith(
      readLocalSettings({ CORS_ALLOWED_ORIGINS: 'https://photos.example' }).corsAllowedOrigins,
    );
  });
  afterAll(async () => {
    await open?.stop();
    await restricted?.stop();
  });

  it('allows any origin by default, on preflights, answers and errors', async () => {
    const preflighted = await preflight(`${open.url}/v1/uploads`, PAGE, 'POST', [
      'authorization',
      'content-type',
    ]);
    expect(preflighted.status).toBe(204);
    expect(preflighted.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflighted.headers.get('access-control-allow-headers')).toMatch(/authorization/);

    const answered = await fetch(`${open.url}/v1/health`, { headers: { origin: PAGE } });
    expect(answered.headers.get('access-control-allow-origin')).toBe('*');
    const unauthorized = await fetch(`${open.url}/v1/batches/x`, { headers: { origin: PAGE } });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('allows only the configured origins when set', async () => {
    const allowed = await fetch(`${restricted.url}/v1/health`, {
      headers: { origin: 'https://photos.example' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://photos.example');
    expect(allowed.headers.get('vary')).toMatch(/origin/i);

    const other = await fetch(`${restricted.url}/v1/health`, { headers: { origin: PAGE } });
    expect(other.status).toBe(200);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const preflighted = await preflight(`${restricted.url}/v1/uploads`, PAGE, 'POST', ['authorization']);
    expect(preflighted.headers.get('access-control-allow-origin')).toBeNull();
  });
});
