import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoImageRecords } from '../../functions/shared/records/image-records.ts';
import { RecordsTable } from '../../functions/shared/records/table.ts';
import type { ImageItem } from '../../functions/shared/records/types.ts';
import { startDynamoServer } from '../../local/emulators/dynamodb.ts';
import { projectRoot } from './corpus.ts';
import { LOCAL_CREDENTIALS, localS3Client } from './local-clients.ts';

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
  /** The webhook signing secret the stack printed at start. */
  webhookSecret: string;
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
  let webhookSecret = '';
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
      webhookSecret ||= /webhooks: signed with (whsec_\S+)/.exec(stdout)?.[1] ?? '';
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
    webhookSecret,
    child,
    logs: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export const removeDir = (dir: string) => rm(dir, { recursive: true, force: true });

/**
 * The image records a stopped stack left in its DATA_DIR, read with the same DynamoDB-compatible
 * server over the same files (the stack must not be running: the files are locked while it is).
 */
export async function recordsOnDisk(dataDir: string, batchId: string): Promise<ImageItem[]> {
  const server = await startDynamoServer({ directory: path.join(dataDir, 'dynamodb') });
  try {
    const client = new DynamoDBClient({
      region: 'us-east-1',
      endpoint: server.endpoint,
      credentials: LOCAL_CREDENTIALS,
    });
    const records = new DynamoImageRecords(
      new RecordsTable(DynamoDBDocumentClient.from(client), { tableName: 'photo-intake' }),
      { retentionSeconds: 60 },
    );
    const { items } = await records.listItems(batchId, { limit: 1000 });
    client.destroy();
    return items as ImageItem[];
  } finally {
    await server.stop();
  }
}
