import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type LocalFile, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import { removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

const SMALL_PHOTO = 'valid/sharp--Landscape_1.jpg';
const OTHER_PHOTO = 'valid/sharp--Portrait_1.jpg';
const jpeg = (name: string, size = 1000) => ({ name, type: 'image/jpeg', size });

/** Every route and error code of the contract, over HTTP, against `npm start`'s process. */
describe('the API contract on the local stack', () => {
  let stack: StackProcess;
  let photo: LocalFile;

  beforeAll(async () => {
    stack = await startStackProcess({ env: { MAX_FILES_PER_BATCH: '20', MAX_BYTES: '10000000' } });
    photo = await loadFile(corpusFile(SMALL_PHOTO));
  });
  afterAll(async () => {
    await stack?.stop();
    if (stack) await removeDir(stack.dataDir);
  });

  describe('authentication', () => {
    it.each([
      ['POST', '/v1/uploads'],
      ['GET', '/v1/images/01JAAAAAAAAAAAAAAAAAAAAAAA'],
      ['DELETE', '/v1/images/01JAAAAAAAAAAAAAAAAAAAAAAA'],
      ['GET', '/v1/batches/01JAAAAAAAAAAAAAAAAAAAAAAA'],
    ])('%s %s without a bearer token is 401', async (method, route) => {
      const response = await fetch(`${stack.url}${route}`, { method });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: 'Unauthorized' } });
      const malformed = await fetch(`${stack.url}${route}`, {
        method,
        headers: { authorization: 'Basic abc' },
      });
      expect(malformed.status).toBe(401);
    });
  });

  describe('POST /v1/uploads', () => {
    const api = () => apiClient(stack.url, 'carol');

    it.each([
      ['a body that is not JSON', '{"files": ['],
      ['no files field', '{}'],
      ['an empty files list', '{"files": []}'],
      ['files entries that are not objects', '{"files": ["IMG_1.jpg"]}'],
    ])('refuses %s with 400 InvalidRequest', async (_, body) => {
      const response = await fetch(`${stack.url}/v1/uploads`, {
        method: 'POST',
        headers: { authorization: 'Bearer carol', 'content-type': 'application/json' },
        body,
      });
      expect(response.status).toBe(400);
      const payload = (await response.json()) as { error: { code: string; message: string } };
      expect(payload.error.code).toBe('InvalidRequest');
      expect(payload.error.message).toEqual(expect.any(String));
    });

    it('refuses more than maxFilesPerBatch files with 400 TooManyFiles', async () => {
      const files = Array.from({ length: 21 }, (_, i) => jpeg(`IMG_${i}.jpg`));
      const response = await api().request('POST', '/v1/uploads', { body: { files } });
      expect(response.status).toBe(400);
      expect(response.body.error.code).toBe('TooManyFiles');
    });

    it('rejects a file that breaks a rule alone, and the rest proceed in request order', async () => {
      const response = await api().request('POST', '/v1/uploads', {
        body: {
          files: [
            jpeg('ok-1.jpg'),
            { name: 'drawing.svg', type: 'image/svg+xml', size: 100 },
            jpeg('huge.jpg', 10_000_001),
            jpeg('../../etc/passwd'),
            jpeg('ok-2.jpg'),
          ],
        },
      });
      expect(response.status).toBe(201);
      const { items, batchId, expiresAt } = response.body;
      expect(batchId).toEqual(expect.any(String));
      expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
      expect(
        items.map((item: { index: number; status: string; error?: { code: string } }) => [
          item.index,
          item.status,
          item.error?.code,
        ]),
      ).toEqual([
        [0, 'pending', undefined],
        [1, 'rejected', 'UnsupportedType'],
        [2, 'rejected', 'TooLarge'],
        [3, 'rejected', 'InvalidName'],
        [4, 'pending', undefined],
      ]);
      expect(items[0].upload).toMatchObject({ method: 'PUT', headers: { 'content-type': 'image/jpeg' } });
      // Keys are built by the server and carry the image id, never the client's file name.
      expect(items[0].upload.url).toContain(items[0].imageId);
      expect(items[0].upload.url).not.toContain('ok-1');

      const batch = await api().request('GET', `/v1/batches/${batchId}`);
      expect(batch.body).toMatchObject({ total: 5, complete: false, counts: { pending: 2, rejected: 3 } });
    });
  });

  describe('presigned uploads', () => {
    it('accept exactly the bytes that were signed, and refuse anything else', async () => {
      const api = apiClient(stack.url, 'dave');
      const other = await loadFile(corpusFile(OTHER_PHOTO));
      const batch = await api.createBatch([photo, { ...other, sha256: undefined }]);
      const [signed, unsigned] = batch.items;
      if (!signed?.upload || !unsigned?.upload) throw new Error('no upload URLs');

      const put = (url: string, headers: Record<string, string>, body: Buffer) =>
        fetch(url, { method: 'PUT', headers, body });
      const { url, headers } = signed.upload;

      // Another key (the other image's), type, length or signature, each: 403.
      expect(
        (await put(url.replace(signed.imageId as string, unsigned.imageId as string), headers, photo.bytes))
          .status,
      ).toBe(403);
      expect((await put(url, { ...headers, 'content-type': 'image/png' }, photo.bytes)).status).toBe(403);
      expect((await put(url, headers, photo.bytes.subarray(1))).status).toBe(403);
      const tampered = url.replace(
        /X-Amz-Signature=([0-9a-f])/,
        (_, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`,
      );
      expect((await put(tampered, headers, photo.bytes)).status).toBe(403);

      // Same length, other bytes: the signed checksum does not match.
      const flipped = Buffer.from(photo.bytes);
      flipped[flipped.length - 10] = (flipped[flipped.length - 10] ?? 0) ^ 0xff;
      const badDigest = await put(url, headers, flipped);
      expect(badDigest.status).toBe(400);
      expect(await badDigest.text()).toContain('BadDigest');

      expect((await put(url, headers, photo.bytes)).status).toBe(200);
      expect((await putUpload(unsigned, other.bytes)).status).toBe(200);
      const done = await api.waitForBatch(batch.batchId);
      expect(done.counts.ready).toBe(2);
    });
  });

  describe('reads, ownership, dedup and DELETE', () => {
    let alice: ReturnType<typeof apiClient>;
    let imageId: string;
    let batchId: string;

    beforeAll(async () => {
      alice = apiClient(stack.url, 'alice');
      const batch = await alice.createBatch([photo]);
      batchId = batch.batchId;
      imageId = batch.items[0]?.imageId as string;
      await putUpload(batch.items[0] as never, photo.bytes);
      await alice.waitForBatch(batchId);
    });

    it('answers 404 for another owner exactly as for an id that does not exist', async () => {
      const bob = apiClient(stack.url, 'bob');
      const missing = '01JZZZZZZZZZZZZZZZZZZZZZZZ';
      for (const [method, route, missingRoute] of [
        ['GET', `/v1/images/${imageId}`, `/v1/images/${missing}`],
        ['GET', `/v1/batches/${batchId}`, `/v1/batches/${missing}`],
        ['DELETE', `/v1/images/${imageId}`, `/v1/images/${missing}`],
      ] as const) {
        const theirs = await bob.request(method, route);
        const nothing = await bob.request(method, missingRoute);
        expect(theirs.status, `${method} ${route}`).toBe(404);
        expect(theirs.body.error.code).toBe('NotFound');
        expect(nothing.status).toBe(404);
        expect(JSON.stringify(theirs.body).replaceAll(/Image|Batch/g, '')).toBe(
          JSON.stringify(nothing.body).replaceAll(/Image|Batch/g, ''),
        );
      }
      // Bob's attempts changed nothing.
      expect((await alice.request('GET', `/v1/images/${imageId}`)).body.status).toBe('ready');
    });

    it('tags image and batch reads, and answers 304 while nothing changed', async () => {
      for (const route of [`/v1/images/${imageId}`, `/v1/batches/${batchId}`]) {
        const first = await alice.request('GET', route);
        const etag = first.headers.get('etag');
        expect(etag).toBeTruthy();
        const again = await alice.request('GET', route, { headers: { 'if-none-match': etag as string } });
        expect(again.status).toBe(304);
        expect(again.body).toBeUndefined();
        const stale = await alice.request('GET', route, { headers: { 'if-none-match': 'W/"stale"' } });
        expect(stale.status).toBe(200);
      }
    });

    it('finds a duplicate of a ready image by sha256, for the same owner only', async () => {
      const again = await alice.createBatch([photo]);
      expect(again.items[0]).toMatchObject({ status: 'ready', duplicateOf: imageId });
      expect(again.items[0]?.upload).toBeUndefined();
      const dup = await alice.request('GET', `/v1/images/${again.items[0]?.imageId}`);
      expect(dup.body).toMatchObject({ status: 'ready', duplicateOf: imageId, width: 600, height: 450 });
      expect((await fetch(dup.body.variants[0].url)).status).toBe(200);

      const erin = await apiClient(stack.url, 'erin').createBatch([photo]);
      expect(erin.items[0]).toMatchObject({ status: 'pending' });
      expect(erin.items[0]?.duplicateOf).toBeUndefined();

      // Deleting the original keeps the duplicate's files; deleting the last user removes them.
      expect((await alice.request('DELETE', `/v1/images/${imageId}`)).status).toBe(204);
      expect((await fetch(dup.body.variants[0].url)).status).toBe(200);
      expect((await alice.request('DELETE', `/v1/images/${again.items[0]?.imageId}`)).status).toBe(204);
      expect((await fetch(dup.body.variants[0].url)).status).toBeGreaterThanOrEqual(400);
    });

    it('DELETE removes the original, every variant and the record; again is 404', async () => {
      const fresh = await loadFile(corpusFile(OTHER_PHOTO));
      const batch = await alice.createBatch([{ ...fresh, sha256: undefined }]);
      await putUpload(batch.items[0] as never, fresh.bytes);
      await alice.waitForBatch(batch.batchId);
      const id = batch.items[0]?.imageId as string;
      const image = await alice.request('GET', `/v1/images/${id}`);
      const urls: string[] = image.body.variants.map((v: { url: string }) => v.url);
      for (const url of urls) expect((await fetch(url)).status).toBe(200);
      // The processed original is kept beside its variants; the upload key was only an inbox.
      const uploadKey = `uploads/${batch.batchId}/${id}`;
      expect(await stack.objectExists('photo-intake-uploads', uploadKey)).toBe(false);
      const originalKey = image.body.variants[0].url.match(new RegExp(`/(${id}/[0-9a-f]{16}/)`))?.[1];
      expect(originalKey).toBeDefined();
      expect(await stack.objectExists('photo-intake-variants', `${originalKey}original`)).toBe(true);

      const deleted = await alice.request('DELETE', `/v1/images/${id}`);
      expect(deleted.status).toBe(204);
      expect(deleted.body).toBeUndefined();
      for (const url of urls) expect((await fetch(url)).status).toBeGreaterThanOrEqual(400);
      expect(await stack.objectExists('photo-intake-variants', `${originalKey}original`)).toBe(false);
      expect((await alice.request('GET', `/v1/images/${id}`)).status).toBe(404);
      expect((await alice.request('DELETE', `/v1/images/${id}`)).status).toBe(404);
      const batchAfter = await alice.request('GET', `/v1/batches/${batch.batchId}`);
      expect(batchAfter.body.total).toBe(0);
    });
  });

  describe('paging a batch', () => {
    it('pages items with limit and cursor, in request order, and refuses bad paging', async () => {
      const api = apiClient(stack.url, 'frank');
      const files = Array.from({ length: 7 }, (_, i) => jpeg(`p${i}.jpg`));
      const batch = await api.createBatch(files);
      const seen: number[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const query: string = `?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
        const page = await api.request('GET', `/v1/batches/${batch.batchId}${query}`);
        expect(page.status).toBe(200);
        expect(page.body.total).toBe(7);
        seen.push(...page.body.items.map((item: { index: number }) => item.index));
        cursor = page.body.nextCursor;
        pages++;
      } while (cursor);
      expect(pages).toBe(3);
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6]);

      for (const query of ['?limit=0', '?limit=501', '?limit=abc', '?cursor=not-a-cursor']) {
        const bad = await api.request('GET', `/v1/batches/${batch.batchId}${query}`);
        expect(bad.status, query).toBe(400);
        expect(bad.body.error.code).toBe('InvalidRequest');
      }
    });
  });

  it('answers unknown routes with 404 and a code', async () => {
    const response = await apiClient(stack.url, 'alice').request('GET', '/v1/nothing-here');
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('NotFound');
  });
});

describe('limits on the local stack', () => {
  let stack: StackProcess;

  beforeAll(async () => {
    stack = await startStackProcess({
      env: { MAX_OPEN_UPLOADS: '5', REQUESTS_PER_MINUTE: '12', UPLOAD_URL_TTL_SECONDS: '2' },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    if (stack) await removeDir(stack.dataDir);
  });

  it('refuses uploads over the open-upload quota with 429 and Retry-After, then frees them as URLs expire', async () => {
    const api = apiClient(stack.url, 'gina');
    const tooMany = await api.request('POST', '/v1/uploads', {
      body: { files: Array.from({ length: 6 }, (_, i) => jpeg(`q${i}.jpg`)) },
    });
    expect(tooMany.status).toBe(429);
    expect(tooMany.body.error.code).toBe('QuotaExceeded');
    // Nothing was created by the refused request: the whole quota is still free.
    const batch = await api.createBatch(Array.from({ length: 5 }, (_, i) => jpeg(`q${i}.jpg`)));
    const over = await api.request('POST', '/v1/uploads', { body: { files: [jpeg('one-more.jpg')] } });
    expect(over.status).toBe(429);
    const retryAfter = Number(over.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);

    // Once the URLs ran out with nothing uploaded, the images read as expired and the quota is free.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const expired = await api.request('GET', `/v1/batches/${batch.batchId}`);
    expect(expired.body).toMatchObject({ complete: true, counts: { expired: 5, pending: 0 } });
    const image = await api.request('GET', `/v1/images/${batch.items[0]?.imageId}`);
    expect(image.body.status).toBe('expired');
    expect((await api.request('POST', '/v1/uploads', { body: { files: [jpeg('later.jpg')] } })).status).toBe(
      201,
    );
  });

  it('refuses an expired upload URL with 403', async () => {
    const api = apiClient(stack.url, 'hank');
    const photo = await loadFile(corpusFile(SMALL_PHOTO));
    const batch = await api.createBatch([photo]);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect((await putUpload(batch.items[0] as never, photo.bytes)).status).toBe(403);
  });

  // Over HTTP, through the gateway. The window slides (no minute boundary resets it), so the 13th of
  // 13 requests in a row is refused whenever they are sent; the limit on an injected clock (request
  // N+1, Retry-After that holds, every route, owner by owner) is proved in
  // test/integration/api/settings-applied.test.ts.
  it('refuses requests over the rate with 429 RateLimited and Retry-After', async () => {
    const api = apiClient(stack.url, 'ivan');
    const answers = [];
    for (let i = 0; i < 13; i++) {
      answers.push(await api.request('GET', '/v1/batches/01JZZZZZZZZZZZZZZZZZZZZZZZ'));
    }
    expect(answers.map((answer) => answer.status)).toEqual([...Array(12).fill(404), 429]);
    const limited = answers[12];
    expect(limited?.body.error.code).toBe('RateLimited');
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Health is never limited.
    expect((await fetch(`${stack.url}/v1/health`)).status).toBe(200);
  });
});
