import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { TABLE_SCHEMA } from '../../../functions/shared/records/schema.ts';
import { type Emulators, startEmulators } from '../../../local/emulators/index.ts';
import { localS3Client } from '../../support/local-clients.ts';

const OPTIONS = {
  buckets: { upload: 'emu-uploads', variants: 'emu-variants' },
  tableName: 'emu-table',
  queueName: 'emu-work',
  dlqName: 'emu-work-dlq',
  visibilityTimeoutSeconds: 1,
  maxReceiveCount: 2,
} as const;
const region = 'us-east-1';

function clientsFor(emulators: Emulators) {
  const s3 = localS3Client(emulators.s3Endpoint);
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const dynamo = new DynamoDBClient({ region, endpoint: emulators.dynamodbEndpoint, credentials });
  const sqs = new SQSClient({ region, endpoint: emulators.sqsEndpoint, credentials });
  return {
    s3,
    dynamo,
    documents: DynamoDBDocumentClient.from(dynamo),
    sqs,
    destroy() {
      s3.destroy();
      dynamo.destroy();
      sqs.destroy();
    },
  };
}

async function receiveOne(sqs: SQSClient, queueUrl: string, waitSeconds = 3): Promise<Message | undefined> {
  const { Messages } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      WaitTimeSeconds: waitSeconds,
      MaxNumberOfMessages: 1,
      MessageSystemAttributeNames: ['ApproximateReceiveCount'],
    }),
  );
  return Messages?.[0];
}

/** Whether something accepts TCP connections on this address and port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

describe('the local emulators', () => {
  let dataDir: string;
  let emulators: Emulators | undefined;
  let clients: ReturnType<typeof clientsFor>;

  const start = async () => {
    emulators = await startEmulators({ dataDir, ...OPTIONS });
    clients = clientsFor(emulators);
    return emulators;
  };
  const stop = async () => {
    clients?.destroy();
    await emulators?.stop();
    emulators = undefined;
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'emulators-'));
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('start quickly, silently, and only on loopback', async () => {
    const stdout = vi.spyOn(process.stdout, 'write');
    const stderr = vi.spyOn(process.stderr, 'write');
    const startedAt = performance.now();
    const running = await start();
    const elapsed = performance.now() - startedAt;

    expect(stdout).not.toHaveBeenCalled();
    expect(stderr).not.toHaveBeenCalled();
    expect(elapsed).toBeLessThan(2000);

    const endpoints = [running.s3Endpoint, running.dynamodbEndpoint, running.sqsEndpoint].map(
      (e) => new URL(e),
    );
    for (const endpoint of endpoints) expect(endpoint.hostname).toBe('127.0.0.1');
    const external = Object.values(networkInterfaces())
      .flat()
      .find((address) => address && !address.internal && address.family === 'IPv4');
    if (external) {
      for (const endpoint of endpoints) {
        expect(await accepts('127.0.0.1', Number(endpoint.port))).toBe(true);
        expect(await accepts(external.address, Number(endpoint.port))).toBe(false);
      }
    }
  });

  it('create the table with the indexes of TABLE_SCHEMA', async () => {
    const { Table } = await clients.dynamo.send(new DescribeTableCommand({ TableName: OPTIONS.tableName }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.KeySchema).toEqual([
      { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
    ]);
    const indexes: Array<{ indexName: string; partitionKey: string; sortKey?: string; projection?: string }> =
      Object.values(TABLE_SCHEMA.indexes);
    expect(indexes.length).toBeGreaterThan(0);
    const described = new Map((Table?.GlobalSecondaryIndexes ?? []).map((index) => [index.IndexName, index]));
    expect([...described.keys()].sort()).toEqual(indexes.map((index) => index.indexName).sort());
    for (const index of indexes) {
      const actual = described.get(index.indexName);
      expect(actual?.IndexStatus).toBe('ACTIVE');
      expect(actual?.KeySchema).toEqual([
        { AttributeName: index.partitionKey, KeyType: 'HASH' },
        ...(index.sortKey ? [{ AttributeName: index.sortKey, KeyType: 'RANGE' }] : []),
      ]);
      expect(actual?.Projection?.ProjectionType).toBe(index.projection ?? 'ALL');
    }
  });

  it('move a message to the dead-letter queue after maxReceiveCount receives', async () => {
    const { queueUrl, dlqUrl } = emulators as Emulators;
    await clients.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'poison' }));

    const counts: string[] = [];
    for (let receive = 1; receive <= OPTIONS.maxReceiveCount; receive++) {
      const message = await receiveOne(clients.sqs, queueUrl);
      expect(message?.Body).toBe('poison');
      counts.push(message?.Attributes?.ApproximateReceiveCount ?? '');
      // Not deleted: it comes back once the 1 s visibility timeout has passed.
    }
    expect(counts).toEqual(['1', '2']);

    // As on SQS, the move happens when a receive would exceed the count: that receive gets nothing.
    expect(await receiveOne(clients.sqs, queueUrl, 3)).toBeUndefined();
    const redriven = await receiveOne(clients.sqs, dlqUrl, 1);
    expect(redriven?.Body).toBe('poison');
    await clients.sqs.send(
      new DeleteMessageCommand({ QueueUrl: dlqUrl, ReceiptHandle: redriven?.ReceiptHandle ?? '' }),
    );
  });

  it('keep objects, records and queued messages across a restart on the same data directory', async () => {
    const before = emulators as Emulators;
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: OPTIONS.buckets.upload,
        Key: 'uploads/kept.jpg',
        Body: 'kept bytes',
        ContentType: 'image/jpeg',
      }),
    );
    await clients.documents.send(
      new PutCommand({ TableName: OPTIONS.tableName, Item: { pk: 'B#kept', sk: '#BATCH', note: 'kept' } }),
    );
    await clients.sqs.send(new SendMessageCommand({ QueueUrl: before.queueUrl, MessageBody: 'in flight' }));
    expect((await receiveOne(clients.sqs, before.queueUrl))?.Body).toBe('in flight');
    await clients.sqs.send(
      new SendMessageCommand({ QueueUrl: before.queueUrl, MessageBody: 'kept message' }),
    );
    await stop();

    const after = await start();
    const object = await clients.s3.send(
      new GetObjectCommand({ Bucket: OPTIONS.buckets.upload, Key: 'uploads/kept.jpg' }),
    );
    expect(await object.Body?.transformToString()).toBe('kept bytes');
    expect(object.ContentType).toBe('image/jpeg');

    const { Item } = await clients.documents.send(
      new GetCommand({ TableName: OPTIONS.tableName, Key: { pk: 'B#kept', sk: '#BATCH' } }),
    );
    expect(Item?.note).toBe('kept');

    expect(after.queueArn).toBe(before.queueArn);
    // The message that was being processed comes back once its visibility timeout has passed.
    const received: Message[] = [];
    for (let attempt = 0; attempt < 3 && received.length < 2; attempt++) {
      const message = await receiveOne(clients.sqs, after.queueUrl);
      if (message) received.push(message);
    }
    expect(received.map((message) => message.Body).sort()).toEqual(['in flight', 'kept message']);
    for (const message of received) {
      await clients.sqs.send(
        new DeleteMessageCommand({ QueueUrl: after.queueUrl, ReceiptHandle: message.ReceiptHandle ?? '' }),
      );
    }
  });

  it('remove the staging files an interrupted upload left behind when they start again', async () => {
    // An object whose key merely looks like a staging file is the user's, and stays.
    await clients.s3.send(
      new PutObjectCommand({ Bucket: OPTIONS.buckets.upload, Key: '.staging-kept', Body: 'a real object' }),
    );
    await stop();
    const bucketDir = join(dataDir, 's3', OPTIONS.buckets.upload);
    const leftover = `.staging-${randomUUID()}`;
    await writeFile(join(bucketDir, leftover), 'half an upload');
    await writeFile(join(bucketDir, `${leftover}.md5`), 'its digest');
    await start();
    const names = await readdir(bucketDir);
    expect(names).not.toContain(leftover);
    expect(names).not.toContain(`${leftover}.md5`);
    const kept = await clients.s3.send(
      new GetObjectCommand({ Bucket: OPTIONS.buckets.upload, Key: '.staging-kept' }),
    );
    expect(await kept.Body?.transformToString()).toBe('a real object');
  });

  it('apply the configured queue settings to queues restored from the data directory', async () => {
    await stop();
    const restarted = await startEmulators({ dataDir, ...OPTIONS, maxReceiveCount: 1 });
    emulators = restarted;
    clients = clientsFor(restarted);

    await clients.sqs.send(new SendMessageCommand({ QueueUrl: restarted.queueUrl, MessageBody: 'once' }));
    expect((await receiveOne(clients.sqs, restarted.queueUrl))?.Body).toBe('once');
    expect(await receiveOne(clients.sqs, restarted.queueUrl, 3)).toBeUndefined();
    expect((await receiveOne(clients.sqs, restarted.dlqUrl, 1))?.Body).toBe('once');
  });
});
