import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { postWebhook } from '../../../functions/notifier/post-webhook.ts';
import {
  CallbackPolicy,
  CallbackUrlError,
  isPublicAddress,
} from '../../../functions/shared/push/callback-url.ts';

const deployed = (addresses: Record<string, string[]>) =>
  new CallbackPolicy({
    allowPrivate: false,
    resolve: async (host) => {
      const found = addresses[host];
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return found;
    },
  });

describe('callbackUrl policy', () => {
  it.each([
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.1',
    '127.0.0.1',
    '127.8.9.10',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    '::ffff:10.0.0.1',
    '::ffff:127.0.0.1',
    '2002:a00:1::1',
    '64:ff9b::a00:1',
  ])('refuses %s', (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.215.14', '2606:4700:4700::1111', '::ffff:8.8.8.8'])(
    'accepts public %s',
    (address) => {
      expect(isPublicAddress(address)).toBe(true);
    },
  );

  it('deployed: https only, no credentials, every resolved address public', async () => {
    const policy = deployed({
      'hooks.example.com': ['8.8.8.8'],
      'split.example.com': ['8.8.8.8', '10.0.0.7'],
    });
    await expect(policy.check('https://hooks.example.com/x')).resolves.toBeUndefined();
    await expect(policy.check('http://hooks.example.com/x')).rejects.toMatchObject({ reason: 'scheme' });
    await expect(policy.check('https://user:pw@hooks.example.com/x')).rejects.toMatchObject({
      reason: 'scheme',
    });
    await expect(policy.check('ftp://hooks.example.com/x')).rejects.toBeInstanceOf(CallbackUrlError);
    // One private address among public ones is enough to refuse (a resolver may pick any).
    await expect(policy.check('https://split.example.com/x')).rejects.toMatchObject({ reason: 'address' });
    await expect(policy.check('https://nowhere.example.com/x')).rejects.toMatchObject({
      reason: 'unresolvable',
    });
    await expect(policy.check('https://[fe80::1]/x')).rejects.toMatchObject({ reason: 'address' });
  });

  it('deployed: a resolver that does not answer now does not refuse (delivery checks again)', async () => {
    const policy = new CallbackPolicy({
      allowPrivate: false,
      resolve: async () => {
        throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
      },
    });
    await expect(policy.check('https://hooks.example.com/x')).resolves.toBeUndefined();
  });

  it('local stack: http and loopback too', async () => {
    const policy = new CallbackPolicy({ allowPrivate: true });
    await expect(policy.check('http://127.0.0.1:9000/x')).resolves.toBeUndefined();
    await expect(policy.check('ftp://127.0.0.1/x')).rejects.toMatchObject({ reason: 'scheme' });
  });

  it('at delivery: refuses a name that resolves to loopback without connecting (DNS rebinding)', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      // Passed at creation (say it resolved to a public address then); `localhost` now resolves to 127.0.0.1.
      const policy = new CallbackPolicy({ allowPrivate: false });
      const job = { id: 'evt_1', url: `https://localhost:${port}/x`, body: '{}' };
      const attempt = await postWebhook(job, {}, { policy, timeoutMs: 2000 });
      expect(attempt.ok).toBe(false);
      expect(attempt.error).toMatch(/loopback/);
      // The same receiver is reached when private targets are allowed (so the refusal was the policy's).
      const local = new CallbackPolicy({ allowPrivate: true });
      const reached = await postWebhook(
        { ...job, url: `http://localhost:${port}/x` },
        {},
        { policy: local, timeoutMs: 2000 },
      );
      expect(reached).toMatchObject({ ok: true, status: 200 });
      expect(requests).toBe(1);
    } finally {
      server.close();
    }
  });

  it('at delivery: a receiver that does not answer is cut off at the timeout', async () => {
    const server = createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const started = Date.now();
      const attempt = await postWebhook(
        { id: 'evt_2', url: `http://127.0.0.1:${port}/x`, body: '{}' },
        {},
        { policy: new CallbackPolicy({ allowPrivate: true }), timeoutMs: 300 },
      );
      expect(attempt).toMatchObject({ ok: false, error: expect.stringMatching(/300 ms/) });
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
