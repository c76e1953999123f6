import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { lambdaContext } from './lambda-context.ts';

export interface PollerOptions {
  /** The function this plays (for its Lambda context); `optimizer` by default. */
  functionName?: string;
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  handler: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;
  /** Concurrent invocations, like the event source's maximum concurrency. */
  concurrency: number;
  batchSize: number;
  functionTimeoutMs: number;
  onError: (error: unknown) => void;
}

export interface Poller {
  /** Stops receiving, and resolves once every invocation in flight has finished. */
  stop(): Promise<void>;
}

/**
 * Plays Lambda's SQS event source: receives batches, invokes the handler with a real `SQSEvent`,
 * and deletes only the messages the handler did not report as failed. Failed ones come back after
 * their visibility timeout, and go to the DLQ after maxReceiveCount, exactly as on AWS.
 */
export function startPoller(options: PollerOptions): Poller {
  const abort = new AbortController();
  // Deletes run beside the next receive, as Lambda's poller deletes apart from the function.
  const deleting = new Set<Promise<void>>();
  const loops = Array.from({ length: options.concurrency }, (_, n) =>
    pollLoop(options, abort.signal, n, deleting),
  );
  return {
    async stop() {
      abort.abort();
      await Promise.all(loops);
      await Promise.all(deleting);
    },
  };
}

async function pollLoop(
  options: PollerOptions,
  signal: AbortSignal,
  worker: number,
  deleting: Set<Promise<void>>,
): Promise<void> {
  while (!signal.aborted) {
    let messages: Message[];
    try {
      const received = await options.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: options.queueUrl,
          MaxNumberOfMessages: options.batchSize,
          WaitTimeSeconds: 5,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: signal },
      );
      messages = received.Messages ?? [];
    } catch (error) {
      if (signal.aborted) return;
      options.onError(error);
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    if (messages.length === 0) continue;
    const done = await invoke(options, messages, worker);
    if (done.length > 0) {
      const deletion = deleteMessages(options, done).finally(() => deleting.delete(deletion));
      deleting.add(deletion);
    }
  }
}

/** Invokes the handler once; returns the messages it finished (to delete), none if it threw. */
async function invoke(options: PollerOptions, messages: Message[], worker: number): Promise<Message[]> {
  const event: SQSEvent = { Records: messages.map((message) => toRecord(options, message)) };
  let failed: Set<string>;
  try {
    const response = await options.handler(
      event,
      lambdaContext(`${options.functionName ?? 'optimizer'}-${worker}`, options.functionTimeoutMs),
    );
    failed = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier));
  } catch (error) {
    // A thrown invocation error fails the whole batch: every message comes back later.
    options.onError(error);
    return [];
  }
  return messages.filter((message) => message.MessageId && !failed.has(message.MessageId));
}

async function deleteMessages(options: PollerOptions, done: Message[]): Promise<void> {
  try {
    await options.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: options.queueUrl,
        Entries: done.map((message, i) => ({ Id: String(i), ReceiptHandle: message.ReceiptHandle })),
      }),
    );
  } catch (error) {
    // Not deleted: the messages are delivered again, and the handler treats them as duplicates.
    options.onError(error);
  }
}

function toRecord(options: PollerOptions, message: Message): SQSRecord {
  const attributes = message.Attributes ?? {};
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
      SenderId: attributes.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: options.queueArn,
    awsRegion: options.region,
  };
}
