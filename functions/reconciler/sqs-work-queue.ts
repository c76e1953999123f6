import { ReceiveMessageCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { S3Event } from 'aws-lambda';
import { encodeEventKey, objectsInNotification } from '../shared/notify/s3-events.ts';
import type { WorkQueue } from './reconcile.ts';

const SEND_BATCH = 10;

/** The work queue and its DLQ over SQS; messages are shaped like S3's own notifications. */
export class SqsWorkQueue implements WorkQueue {
  readonly #client: SQSClient;
  readonly #queueUrl: string;
  readonly #dlqUrl: string;

  constructor(client: SQSClient, options: { queueUrl: string; dlqUrl: string }) {
    this.#client = client;
    this.#queueUrl = options.queueUrl;
    this.#dlqUrl = options.dlqUrl;
  }

  async enqueue(objects: readonly { bucket: string; key: string }[]): Promise<void> {
    for (let start = 0; start < objects.length; start += SEND_BATCH) {
      const chunk = objects.slice(start, start + SEND_BATCH);
      const output = await this.#client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.#queueUrl,
          Entries: chunk.map((object, i) => ({
            Id: String(i),
            MessageBody: JSON.stringify(notification(object)),
          })),
        }),
      );
      if (output.Failed && output.Failed.length > 0) {
        throw new Error(
          `SQS refused ${output.Failed.length} of ${chunk.length} messages: ${output.Failed[0]?.Code}`,
        );
      }
    }
  }

  async deadLetters(max: number): Promise<{ bucket: string; key: string }[]> {
    const found: { bucket: string; key: string }[] = [];
    while (found.length < max) {
      const { Messages = [] } = await this.#client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.#dlqUrl,
          MaxNumberOfMessages: Math.min(10, max - found.length),
          // Hidden for the rest of this run so one run reads each letter once; they stay in the DLQ
          // (and its alarm) for an operator to inspect and redrive.
          VisibilityTimeout: 60,
          WaitTimeSeconds: 0,
        }),
      );
      if (Messages.length === 0) break;
      for (const message of Messages) found.push(...objectsInNotification(message.Body ?? ''));
    }
    return found;
  }
}

function notification(object: { bucket: string; key: string }): S3Event {
  return {
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: '',
        eventTime: new Date().toISOString(),
        eventName: 'ObjectCreated:Put',
        userIdentity: { principalId: 'photo-intake-reconciler' },
        requestParameters: { sourceIPAddress: '127.0.0.1' },
        responseElements: { 'x-amz-request-id': '', 'x-amz-id-2': '' },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'photo-intake-reconciler',
          bucket: {
            name: object.bucket,
            ownerIdentity: { principalId: '' },
            arn: `arn:aws:s3:::${object.bucket}`,
          },
          object: { key: encodeEventKey(object.key), size: 0, eTag: '', sequencer: '' },
        },
      },
    ],
  };
}
