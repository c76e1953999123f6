import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { S3Event } from 'aws-lambda';
import { decodeEventKey } from '../../functions/shared/notify/s3-events.ts';

export interface NotificationBridgeOptions {
  sqs: SQSClient;
  queueUrl: string;
  bucket: string;
  /** Only keys under this prefix notify, as the deployed bucket's filter does. */
  prefix: string;
  onError: (error: unknown) => void;
}

/**
 * Plays S3 event notifications: each object created under the prefix becomes an SQS message with
 * the S3 event as its body, one record per message, as S3 sends them.
 */
export function notificationBridge(options: NotificationBridgeOptions) {
  const inFlight = new Set<Promise<void>>();
  const deliver = async (event: S3Event) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await options.sqs.send(
          new SendMessageCommand({ QueueUrl: options.queueUrl, MessageBody: JSON.stringify(event) }),
        );
        return;
      } catch (error) {
        // Past this the object stays `pending` with its bytes stored; start-up reconciliation
        // queues it again.
        if (attempt >= 5) {
          options.onError(error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  };
  return {
    /** Takes an S3 event as the S3 server emitted it. */
    onObjectCreated(event: S3Event): void {
      for (const record of event.Records) {
        const key = decodeEventKey(record.s3.object.key);
        if (record.s3.bucket.name !== options.bucket || !key.startsWith(options.prefix)) continue;
        const sending = deliver({ Records: [record] }).finally(() => inFlight.delete(sending));
        inFlight.add(sending);
      }
    },
    /** Resolves once every notification already taken is on the queue. */
    async drain(): Promise<void> {
      await Promise.all([...inFlight]);
    },
  };
}
