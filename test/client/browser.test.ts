import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sparticuz from '@sparticuz/chromium';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUploaderPage } from '../../client/web/build.ts';
import { corpusDir, corpusFile, expectations, projectRoot } from '../support/corpus.ts';
import { type ClientStack, isUploadPut, sleep, startClientStack } from './support.ts';

/** Screenshots and the 1,000-file measurement land here (git-ignored). */
const OUTPUT = path.join(projectRoot, 'test', 'client', 'output');

/**
 * Real Chromium (from npm: @sparticuz/chromium, driven by playwright-core), with web security on,
 * so CORS is what a user's browser would enforce.
 */
async function launchChromium(): Promise<Browser> {
  const args = sparticuz.args.filter((arg) => arg !== '--disable-web-security');
  try {
    return await chromium.launch({ executablePath: await sparticuz.executablePath(), args, headless: true });
  } catch (error) {
    // Debian's chromium (`apt-get install chromium`) when the packaged one cannot start here.
    if (existsSync('/usr/bin/chromium'))
      return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
    throw error;
  }
}

/** Serves the built page on its own loopback port: another origin than the API and the storage. */
async function servePage(html: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url === '/' || req.url?.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('web uploader in Chromium, served from another origin', () => {
  let env: ClientStack;
  let browser: Browser;
  /** One context for every page: in its single-process mode Chromium quits when a context closes. */
  let context: BrowserContext;
  let page: { url: string; server: Server };

  beforeAll(async () => {
    env = await startClientStack();
    page = await servePage(await buildUploaderPage());
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    await mkdir(OUTPUT, { recursive: true });
  }, 120_000);

  // The stack finishes the work in flight before it stops: after 1,000 uploads that takes a while.
  afterAll(async () => {
    const started = Date.now();
    await browser?.close();
    page?.server.close();
    await env?.stop();
    console.log(`browser closed and stack stopped in ${Date.now() - started} ms`);
  }, 300_000);

  async function open(token: string): Promise<Page> {
    const tab = await context.newPage();
    tab.on('pageerror', (error) => console.error(`page error: ${error.message}`));
    await tab.goto(`${page.url}/?token=${token}&api=${encodeURIComponent(env.stack.apiUrl)}`);
    return tab;
  }

  const statuses = (tab: Page) =>
    tab.$$eval('[data-file]', (rows) => rows.map((row) => (row as HTMLElement).dataset.status));

  it('uploads 30 corpus photos to ready rows with thumbnails, and names a hostile file’s failure', async () => {
    const tab = await open(`web-${randomUUID()}`);
    expect(await tab.inputValue('input[name=token]')).toMatch(/^web-/);
    expect(await tab.inputValue('input[name=api]')).toBe(env.stack.apiUrl);
    expect(new URL(tab.url()).origin).not.toBe(new URL(env.stack.apiUrl).origin);

    const photos = (await readdir(path.join(corpusDir, 'valid')))
      .sort()
      .map((name) => corpusFile(`valid/${name}`));
    expect(photos).toHaveLength(30);
    await tab.setInputFiles('input[type=file][multiple]', photos);
    await tab
      .waitForFunction(
        () => document.querySelectorAll('[data-file][data-status=ready]').length === 30,
        undefined,
        {
          timeout: 150_000,
          polling: 250,
        },
      )
      .catch(() => undefined);
    const shown = await tab.$$eval('[data-file]', (rows) =>
      rows.map((row) =>
        `${(row as HTMLElement).dataset.status} ${(row as HTMLElement).dataset.error ?? ''}`.trim(),
      ),
    );
    expect(shown).toEqual(photos.map(() => 'ready'));
    // Each row shows its thumbnail variant, loaded (a plain cross-origin GET of a presigned URL).
    await tab.waitForFunction(
      () =>
        [...document.querySelectorAll<HTMLImageElement>('[data-file] img')].every(
          (img) => img.complete && img.naturalWidth > 0,
        ),
      undefined,
      { timeout: 30_000 },
    );
    const thumbs = await tab.$$eval('[data-file] img', (imgs) =>
      imgs.map((img) => ({
        src: (img as HTMLImageElement).src,
        placeholder: (img as HTMLElement).style.backgroundImage,
      })),
    );
    for (const thumb of thumbs) {
      expect(thumb.src).toMatch(/\/thumb\./);
      expect(thumb.placeholder).toMatch(/^url\("data:image\/png;base64,/);
    }

    const hostile = 'hostile/fuzzdb--lottapixel.jpg';
    const [code] = expectations()[hostile]?.codes ?? [];
    await tab.setInputFiles('input[type=file][multiple]', [corpusFile(hostile)]);
    const row = tab.locator('[data-file="fuzzdb--lottapixel.jpg"]');
    await row.and(tab.locator('[data-status=failed]')).waitFor({ timeout: 60_000 });
    expect(await row.getAttribute('data-error')).toBe(code);
    expect(await row.locator('.detail').textContent()).toContain('too many pixels');
    await tab.screenshot({ path: path.join(OUTPUT, 'uploader-finished.png'), fullPage: true });
    await tab.close();
  });

  it('survives going offline for 5 s in the middle of an upload', async () => {
    const tab = await open(`offline-${randomUUID()}`);
    const failed: string[] = [];
    tab.on('requestfailed', (request) => failed.push(request.url()));
    // Slow uploads, so that the network goes away while bytes are going up.
    const slow = env.s3.inject({ match: isUploadPut, times: Infinity, delayMs: 400 });
    try {
      const photos = (await readdir(path.join(corpusDir, 'valid')))
        .filter((name) => name.startsWith('sharp--Landscape') || name.startsWith('sharp--Portrait'))
        .map((name) => corpusFile(`valid/${name}`));
      await tab.setInputFiles('input[type=file][multiple]', photos);
      await tab.locator('[data-file][data-status=uploading]').first().waitFor({ timeout: 30_000 });
      await context.setOffline(true);
      await sleep(5_000);
      await context.setOffline(false);
      expect(failed.length).toBeGreaterThan(0);
      await tab.waitForFunction(
        (count) => document.querySelectorAll('[data-file][data-status=ready]').length === count,
        photos.length,
        { timeout: 150_000, polling: 250 },
      );
      expect(await statuses(tab)).toEqual(photos.map(() => 'ready'));
    } finally {
      slow.times = 0;
      await tab.close();
    }
  });

  it('stays responsive with 1,000 files dropped (longest main-thread task reported)', async () => {
    const tab = await open(`many-${randomUUID()}`);
    await tab.evaluate(() => {
      const w = window as unknown as { longTasks: Array<[number, number]> };
      w.longTasks = [];
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) w.longTasks.push([entry.startTime, entry.duration]);
      }).observe({ type: 'longtask', buffered: true });
    });
    const png = (await readFile(corpusFile('valid/sharp--Flag_of_the_Netherlands-alpha.png'))).toString(
      'base64',
    );
    // The files are made in one task and dropped in another, so that making them is not counted.
    await tab.evaluate((base64) => {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      for (let i = 0; i < 1000; i++) {
        transfer.items.add(
          new File([bytes], `flag-${String(i).padStart(4, '0')}.png`, { type: 'image/png' }),
        );
      }
      (window as unknown as { transfer: DataTransfer }).transfer = transfer;
    }, png);
    const started = Date.now();
    const droppedAt = await tab.evaluate(() => {
      const at = performance.now();
      const transfer = (window as unknown as { transfer: DataTransfer }).transfer;
      document
        .querySelector('#drop')
        ?.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      return at;
    });
    await tab.waitForFunction(() => document.querySelectorAll('[data-file]').length === 1000, undefined, {
      timeout: 30_000,
    });
    const rowsMs = Date.now() - started;
    await tab.waitForFunction(
      () =>
        document.querySelectorAll(
          '[data-file][data-status=uploaded], [data-file][data-status=processing], [data-file][data-status=ready]',
        ).length === 1000,
      undefined,
      { timeout: 240_000, polling: 1_000 },
    );
    const uploadedMs = Date.now() - started;
    const tasks = (
      await tab.evaluate(() => (window as unknown as { longTasks: Array<[number, number]> }).longTasks)
    )
      .filter(([at]) => at >= droppedAt)
      .map(([at, duration]) => ({ at: at - droppedAt, duration }));
    const longest = (list: typeof tasks) => Math.round(Math.max(0, ...list.map((task) => task.duration)));
    const report = {
      files: 1000,
      rowsShownMs: rowsMs,
      allUploadedMs: uploadedMs,
      longTasks: tasks.length,
      longestTaskFirst10sMs: longest(tasks.filter((task) => task.at < 10_000)),
      longestTaskMs: longest(tasks),
      tasksOver200Ms: tasks.filter((task) => task.duration > 200).length,
    };
    console.log(`1,000 files dropped: ${JSON.stringify(report)}`);
    await writeFile(path.join(OUTPUT, 'thousand-files.json'), `${JSON.stringify(report, null, 2)}\n`);
    expect(await tab.locator('[data-file]').count()).toBe(1000);
    await tab.close();
  });
});
