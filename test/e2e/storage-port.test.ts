import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { apiClient, loadFile, putUpload } from '../support/api-client.ts';
import { corpusFile } from '../support/corpus.ts';
import { removeDir, type StackProcess, startStackProcess } from '../support/stack-process.ts';

/** Resolves when `port` can be listened on at 127.0.0.1, to whether it could. */
const isFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/** A port `p` with `p + 1` also free, for an API port and its default storage port. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    if (port > 0 && port < 65_535 && (await isFree(port + 1))) return port;
  }
  throw new Error('no two adjacent free ports');
}

describe('the local storage endpoint across restarts', () => {
  let stacks: StackProcess[] = [];
  afterEach(async () => {
    for (const stack of stacks) await stack.stop('SIGKILL');
    if (stacks[0]) await removeDir(stacks[0].dataDir);
    stacks = [];
  });

  it('keeps its port (PORT + 1), so URLs handed out before a restart work after it', async () => {
    const port = await freePortPair();
    const env = { PORT: String(port) };
    const start = async (dataDir?: string) => {
      const stack = await startStackProcess({ ...(dataDir && { dataDir }), env });
      stacks.push(stack);
      expect(stack.url).toBe(`http://127.0.0.1:${port}`);
      expect(stack.s3Endpoint).toBe(`http://127.0.0.1:${port + 1}`);
      return stack;
    };

    const first = await start();
    const photo = await loadFile(corpusFile('valid/sharp--Landscape_6.jpg'));
    const batch = await apiClient(first.url, 'restart-port').createBatch([photo]);
    const [item] = batch.items;
    expect(item?.upload?.url.startsWith(first.s3Endpoint)).toBe(true);
    expect(await first.stop('SIGTERM')).toBe(0);

    // The upload URL from before the restart stores the photo, which then becomes ready.
    const second = await start(first.dataDir);
    expect((await putUpload(item ?? { index: 0, status: '' }, photo.bytes)).status).toBe(200);
    const done = await apiClient(second.url, 'restart-port').waitForBatch(batch.batchId, 60_000);
    expect(done.counts.ready).toBe(1);
    const variantUrls: string[] = done.items[0].variants.map((variant: { url: string }) => variant.url);
    expect(variantUrls.length).toBeGreaterThan(0);
    expect(await second.stop('SIGTERM')).toBe(0);

    // So do the variant URLs handed out before the next restart.
    await start(first.dataDir);
    for (const url of variantUrls) expect((await fetch(url)).status).toBe(200);
  });
});
