import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { projectRoot } from './corpus.ts';
import { localS3Client } from './local-clients.ts';

export interface StackProcess {
  url: string;
  /** The local S3 server (credentials S3RVER / S3RVER). */
  s3Endpoint: string;
  /** The local DynamoDB server the handlers use (same credentials). */
  dynamodbEndpoint: string;
  /** The records table on it. */
  tableName: string;
  /** Whether the local S3 server holds this object. */
  objectExists(bucket: string, key: string): Promise<boolean>;
  dataDir: string;
  child: ChildProcess;
  /** What the stack printed on stderr so far (for failure messages). */
  logs(): string;
  /** Sends a signal and waits for the process to exit; returns its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `npm start`'s entry point (`node local/main.ts`) as its own process on a free port, and
 * waits for the contract's ready line.
 */
export async function startStackProcess(
  options: { dataDir?: string; env?: Record<string, string> } = {},
): Promise<StackProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'photo-intake-')));
  const child = spawn(process.execPath, ['local/main.ts'], {
    cwd: projectRoot,
    env: { ...process.env, PORT: '0', DATA_DIR: dataDir, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let s3Endpoint = '';
  let dynamodbEndpoint = '';
  let tableName = '';
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(
      () => reject(new Error(`no ready line within 30 s:\n${stdout}\n${stderr}`)),
      30_000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      s3Endpoint ||= /s3 endpoint (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1] ?? '';
      const records = /dynamodb endpoint (http:\/\/127\.0\.0\.1:\d+) \(table ([^)\s]+)\)/.exec(stdout);
      if (records) [, dynamodbEndpoint = '', tableName = ''] = records;
      const found = /ready\b.*?(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (found?.[1]) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the stack exited (${code}) before it was ready:\n${stderr}`));
    });
  });
  const s3 = localS3Client(s3Endpoint);
  return {
    url,
    s3Endpoint,
    dynamodbEndpoint,
    tableName,
    async objectExists(bucket, key) {
      try {
        await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch (error) {
        if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
          return false;
        throw error;
      }
    },
    dataDir,
    child,
    logs: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export const removeDir = (dir: string) => rm(dir, { recursive: true, force: true });
