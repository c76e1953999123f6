import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

/**
 * What an outsider sends to the local stack's API to break it (issue 13): each answer is a 4xx in
 * the contract's error shape, small whatever the request, and nothing is read before it must be.
 */
describe('hostile requests to the local stack', () => {
  let stack: StackProcess;

  beforeAll(async () => {
    stack = await startStackProcess({ env: { MAX_FILES_PER_BATCH: '20' } });
  });
  afterAll(async () => {
    await stack?.stop();
    if (stack) await removeDir(stack.dataDir);
  });

  const call = async (path: string, init: RequestInit & { token?: string } = {}) => {
    const { token = 'alice', ...rest } = init;
    const response = await fetch(`${stack.url}${path}`, {
      ...rest,
      headers: { authorization: `Bearer ${token}`, ...(rest.headers as Record<string, string>) },
    });
    const text = await response.text();
    return { status: response.status, text, body: text ? JSON.parse(text) : undefined };
  };

  /** Writes raw bytes to the gateway and resolves with what came back once the server closed or answered. */
  function raw(request: string, options: { waitMs?: number } = {}) {
    return new Promise<{ response: string; closed: boolean }>((resolve, reject) => {
      const { port } = new URL(stack.url);
      const socket = connect(Number(port), '127.0.0.1');
      let response = '';
      let closed = false;
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ response, closed });
      }, options.waitMs ?? 3000);
      socket.on('data', (chunk) => {
        response += chunk.toString();
      });
      socket.on('close', () => {
        closed = true;
        clearTimeout(timer);
        resolve({ response, closed });
      });
      socket.on('error', reject);
      socket.write(request);
    });
  }

  it.each([
    ['GET', '/v1/images/%ZZ'],
    ['DELETE', '/v1/images/%E0%A4%A'],
    ['POST', '/v1/images/%/upload'],
    ['GET', '/v1/batches/%C0%AF'],
  ])('answers a malformed %%-escape (%s %s) with 400, not 500', async (method, path) => {
    const response = await call(path, { method });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: { code: 'InvalidRequest' } });
  });

  it('answers 401 for a bearer token of 2 KB or an owner id it cannot key records by, and 431 past the header limit', async () => {
    for (const token of ['x'.repeat(257), 'y'.repeat(2048), 'z'.repeat(8000)]) {
      const response = await call('/v1/limits', { token });
      expect(response.status, `${token.length}-character token`).toBe(401);
      expect(response.body).toMatchObject({ error: { code: 'Unauthorized' } });
    }
    const huge = await call('/v1/limits', { token: 'w'.repeat(20_000) });
    expect(huge.status).toBe(431);
    expect(huge.body).toMatchObject({ error: { code: 'HeadersTooLarge' } });
    // Another request on the stack still works.
    expect((await call('/v1/limits')).status).toBe(200);
  });

  it('answers an unauthenticated upload before its body arrives, and closes the connection', async () => {
    const started = Date.now();
    const { response, closed } = await raw(
      'POST /v1/uploads HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\r\n{"files": [',
    );
    expect(response).toMatch(/^HTTP\/1\.1 401/);
    expect(response).toContain('"Unauthorized"');
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('refuses a declared body over the limit with 413 without reading it', async () => {
    const { response, closed } = await raw(
      'POST /v1/uploads HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer alice\r\ncontent-type: application/json\r\ncontent-length: 20000000\r\n\r\n',
    );
    expect(response).toMatch(/^HTTP\/1\.1 413/);
    expect(response).toContain('"PayloadTooLarge"');
    expect(closed).toBe(true);
  });

  it('keeps every error answer small, whatever the size of the request', async () => {
    // A million non-objects (2 MB): refused by the list's length before any entry is looked at.
    const million = await call('/v1/uploads', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ files: Array.from({ length: 1_000_000 }, () => 1) }),
    });
    expect(million.status).toBe(400);
    expect(million.body.error.code).toBe('TooManyFiles');
    // Twenty entries that are not objects, each with a long path: details are capped.
    const twenty = await call('/v1/uploads', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ files: Array.from({ length: 20 }, () => 'x'.repeat(100_000)) }),
    });
    expect(twenty.status).toBe(400);
    // Files with 100 KB names: each is rejected, and its name is echoed at most 255 characters long.
    const names = await call('/v1/uploads', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        files: Array.from({ length: 20 }, () => ({ name: 'n'.repeat(100_000), type: 'image/jpeg', size: 1 })),
        ignored: 'i'.repeat(1_000_000),
      }),
    });
    expect(names.status).toBe(201);
    expect(names.body.items.every((item: { status: string }) => item.status === 'rejected')).toBe(true);
    const cursor = await call(
      `/v1/batches/01JAAAAAAAAAAAAAAAAAAAAAAA?cursor=${'c'.repeat(6000)}&limit=9${'9'.repeat(3000)}`,
    );
    expect(cursor.status).toBe(400);
    const route = await call(`/v1/${'p'.repeat(8000)}`);
    expect(route.status).toBe(404);
    for (const [what, answer, most] of [
      ['million', million, 2000],
      ['twenty', twenty, 5000],
      ['names', names, 20 * 1000],
      ['cursor', cursor, 1000],
      ['route', route, 1000],
    ] as const) {
      expect(answer.text.length, what).toBeLessThan(most);
    }
  });

  it('answers ids and query strings it cannot use as 400 or 404, never 500', async () => {
    const odd = [
      '/v1/images/..%2F..%2Fetc',
      `/v1/images/${'A'.repeat(2000)}`,
      '/v1/images/%00',
      '/v1/batches/01JAAAAAAAAAAAAAAAAAAAAAAA?limit=-1',
      '/v1/batches/01JAAAAAAAAAAAAAAAAAAAAAAA?limit=1e3',
      '/v1/batches/01JAAAAAAAAAAAAAAAAAAAAAAA?cursor=%ZZ',
      '/v1/batches/01JAAAAAAAAAAAAAAAAAAAAAAA?cursor=a&cursor=b&limit=1&limit=2',
    ];
    for (const path of odd) {
      const response = await call(path);
      expect([400, 404], path).toContain(response.status);
      expect(response.body.error.code, path).toMatch(/^(InvalidRequest|NotFound)$/);
    }
  });
});
