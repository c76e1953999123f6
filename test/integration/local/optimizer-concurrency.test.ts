import { GetQueueAttributesCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import { type SqsServer, startSqsServer } from '../../../local/emulators/sqs.ts';
import { type Poller, startPoller } from '../../../local/glue/poller.ts';
import { readLocalSettings } from '../../../local/settings.ts';
import { LOCAL_CREDENTIALS } from '../../support/local-clients.ts';

const REGION = 'us-east-1';
const MESSAGES = 7;

/** Waits (without asserting how long it takes) until `ready` holds. */
async function until(ready: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await ready())) await new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * `OPTIMIZER_CONCURRENCY` (local stack) applied: the poller that plays Lambda's SQS event source,
 * started as local/stack.ts starts it with the setting, against the SQS-compatible server, runs
 * exactly that many optimizer invocations at once, and no more.
 */
describe('OPTIMIZER_CONCURRENCY', () => {
  let server: SqsServer | undefined;
  let sqs: SQSClient | undefined;
  let poller: Poller | undefined;
  afterEach(async () => {
    await poller?.stop();
    sqs?.destroy();
    await server?.stop();
  });

  it.each([
    ['1', 1],
    ['3', 3],
  ])('=%s: that many uploads are processed at once while more wait in the queue', async (value, expected) => {
    const settings = readLocalSettings({ OPTIMIZER_CONCURRENCY: value });
    server = await startSqsServer({
      queueName: 'work',
      dlqName: 'work-dlq',
      visibilityTimeoutSeconds: settings.visibilityTimeoutSeconds,
      maxReceiveCount: settings.maxReceiveCount,
    });
    const client = new SQSClient({
      region: REGION,
      endpoint: server.endpoint,
      credentials: LOCAL_CREDENTIALS,
    });
    sqs = client;
    await client.send(
      new SendMessageBatchCommand({
        QueueUrl: server.queueUrl,
        Entries: Array.from({ length: MESSAGES }, (_, i) => ({ Id: `m${i}`, MessageBody: `upload ${i}` })),
      }),
    );

    // Each invocation holds until the test lets it finish.
    const held: (() => void)[] = [];
    const finished: string[] = [];
    let running = 0;
    let most = 0;
    const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => held.push(resolve));
      running--;
      finished.push(...event.Records.map((record) => record.body));
      return { batchItemFailures: [] };
    };
    const queueCounts = async () => {
      const { Attributes = {} } = await client.send(
        new GetQueueAttributesCommand({
          QueueUrl: server?.queueUrl,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      return {
        waiting: Number(Attributes.ApproximateNumberOfMessages),
        inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible),
      };
    };

    poller = startPoller({
      sqs: client,
      queueUrl: server.queueUrl,
      queueArn: server.queueArn,
      region: REGION,
      handler,
      concurrency: settings.optimizerConcurrency,
      batchSize: 1,
      functionTimeoutMs: 60_000,
      onError: (error) => {
        throw error;
      },
    });

    await until(() => held.length === expected);
    // Exactly the held ones were taken from the queue; the rest wait for a free invocation.
    expect(await queueCounts()).toEqual({ waiting: MESSAGES - expected, inFlight: expected });
    expect(running).toBe(expected);

    // Let them go one at a time: each finished invocation takes the next message, never more at once.
    while (finished.length < MESSAGES) {
      await until(() => held.length > 0 || finished.length === MESSAGES);
      held.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(most).toBe(expected);
    expect(finished.sort()).toEqual(Array.from({ length: MESSAGES }, (_, i) => `upload ${i}`));
    await until(async () => (await queueCounts()).inFlight === 0);
    expect(await queueCounts()).toEqual({ waiting: 0, inFlight: 0 });
  });
});
