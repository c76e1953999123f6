import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ItemReport } from '../../client/cli/main.ts';
import { corpusDir, expectations, projectRoot } from '../support/corpus.ts';
import { type ClientStack, isUploadPut, sleep, startClientStack } from './support.ts';

const BIN = path.join(projectRoot, 'client', 'cli', 'bin.mjs');

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  stdout: () => string;
}

/** Runs `photo-intake` as a user would (the package's bin, with the project's Node). */
function cli(args: string[], options: { cwd: string; env?: Record<string, string> }): Run {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, PHOTO_INTAKE_API: '', PHOTO_INTAKE_TOKEN: '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done, stdout: () => stdout };
}

const parseItems = (stdout: string) => {
  const document = JSON.parse(stdout) as { items: ItemReport[] };
  expect(Object.keys(document)).toEqual(['items']);
  return document.items;
};

describe('photo-intake command line', () => {
  let env: ClientStack;
  let api: string;

  beforeAll(async () => {
    env = await startClientStack();
    api = env.stack.apiUrl;
  }, 120_000);

  afterAll(async () => {
    await env?.stop();
  });

  const workDir = () => mkdtemp(path.join(tmpdir(), 'photo-intake-cli-'));

  it('uploads ../shared/corpus/valid and exits 0 with every file ready (--wait --json)', async () => {
    const cwd = await workDir();
    const { code, stdout, stderr } = await cli(
      [
        'upload',
        path.join(corpusDir, 'valid'),
        '--api',
        api,
        '--token',
        `cli-${randomUUID()}`,
        '--wait',
        '--json',
      ],
      { cwd },
    ).done;
    expect(code, stderr).toBe(0);
    const items = parseItems(stdout);
    const names = (await readdir(path.join(corpusDir, 'valid'))).sort();
    expect(items.map((item) => path.basename(item.path))).toEqual(names);
    for (const item of items) {
      expect(item).toEqual({
        path: expect.any(String),
        imageId: expect.stringMatching(/^[0-9A-Z]{26}$/),
        status: 'ready',
      });
    }
    // The state file it names is in the working folder.
    expect(await readdir(cwd)).toEqual(['.photo-intake-state.json']);
  });

  it('uploads ../shared/corpus/hostile and exits 2, each file with the outcome expected.json names', async () => {
    const cwd = await workDir();
    const { code, stdout, stderr } = await cli(
      ['upload', path.join(corpusDir, 'hostile'), '--wait', '--json'],
      {
        cwd,
        env: { PHOTO_INTAKE_API: api, PHOTO_INTAKE_TOKEN: `hostile-${randomUUID()}` },
      },
    ).done;
    expect(code, stderr).toBe(2);
    const expected = expectations();
    const items = parseItems(stdout);
    expect(items).toHaveLength(Object.keys(expected).filter((name) => name.startsWith('hostile/')).length);
    for (const item of items) {
      const expectation = expected[`hostile/${path.basename(item.path)}`];
      const outcome = `${item.path}: ${item.status} ${item.error?.code ?? ''}`;
      expect(expectation, outcome).toBeDefined();
      if (expectation?.expect === 'ready') expect(item.status, outcome).toBe('ready');
      else if (expectation?.expect === 'failed') {
        expect(item.status, outcome).toBe('failed');
        expect(expectation.codes, outcome).toContain(item.error?.code);
      } else if (item.status !== 'ready') {
        expect(item.status, outcome).toBe('failed');
        expect(expectation?.codes, outcome).toContain(item.error?.code);
      }
    }
  });

  it('stopped with SIGINT, then run again with the same arguments, uploads only what was left', async () => {
    const cwd = await workDir();
    const args = [
      'upload',
      path.join(corpusDir, 'valid'),
      '--api',
      api,
      '--token',
      `sigint-${randomUUID()}`,
      '--concurrency',
      '1',
    ];
    const slow = env.s3.inject({ match: isUploadPut, times: Infinity, delayMs: 250 });
    const first = cli(args, { cwd });
    for (let i = 0; i < 200 && (first.stdout().match(/^uploaded /gm)?.length ?? 0) < 8; i++) await sleep(50);
    first.child.kill('SIGINT');
    const stopped = await first.done;
    slow.times = 0;
    expect(stopped.code, stopped.stderr).toBe(130);
    expect(stopped.stderr).toContain('interrupted');

    const state = JSON.parse(await readFile(path.join(cwd, '.photo-intake-state.json'), 'utf8')) as {
      upload: { files: Record<string, { batchId: string; imageId: string; status: string }> };
    };
    const keys = Object.values(state.upload.files).map((file) => `uploads/${file.batchId}/${file.imageId}`);
    expect(keys).toHaveLength(30);
    const stored = new Set(
      (await Promise.all(keys.map(async (key) => ((await env.stored(key)) ? key : '')))).filter(Boolean),
    );
    expect(stored.size).toBeGreaterThanOrEqual(8);
    expect(stored.size).toBeLessThan(30);

    const before = env.puts.length;
    const again = await cli(args, { cwd }).done;
    expect(again.code, again.stderr).toBe(0);
    const putAgain = new Set(env.puts.slice(before));
    expect([...putAgain].filter((key) => stored.has(key))).toEqual([]);
    expect(putAgain.size).toBe(30 - stored.size);

    // Every file of the batch ends ready; `status` reads it.
    const batchId = Object.values(state.upload.files)[0]?.batchId as string;
    const status = await cli(
      ['status', batchId, '--api', api, '--token', args[5] as string, '--wait', '--json'],
      { cwd },
    ).done;
    expect(status.code, status.stderr).toBe(0);
    expect(parseItems(status.stdout).map((item) => item.status)).toEqual(keys.map(() => 'ready'));
  });

  it('exits 1 for usage and connection errors', async () => {
    const cwd = await workDir();
    const noToken = await cli(['upload', path.join(corpusDir, 'valid'), '--api', api], { cwd }).done;
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain('PHOTO_INTAKE_TOKEN');
    const noFiles = await cli(['upload', '--token', 'x'], { cwd }).done;
    expect(noFiles.code).toBe(1);
    const unknown = await cli(['fly', '--token', 'x'], { cwd }).done;
    expect(unknown.code).toBe(1);
    // A port nothing listens on (the gateway's own, once stopped, would do; this one is closed).
    const unreachable = await cli(
      [
        'upload',
        path.join(corpusDir, 'valid', 'sharp--Landscape_1.jpg'),
        '--api',
        'http://127.0.0.1:9',
        '--token',
        'x',
      ],
      { cwd },
    ).done;
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('NetworkError');
  });
});
