import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue, DynamoDBRecord } from 'aws-lambda';
import type { EventSink, PipelineEvent } from '../shared/fate/events.ts';
import { outboxKey } from '../shared/records/schema.ts';
import type { Key } from '../shared/records/table.ts';

export interface RelayDeps {
  /** EventBridge, the webhook queue and the metrics, in that order (push/sinks.ts `fanOut`). */
  sink: EventSink;
  /** Removes handed-on rows from the outbox. */
  deleteRows: (keys: readonly Key[]) => Promise<void>;
}

/**
 * Hands on the events of outbox rows as DynamoDB Streams reports their insertion, then deletes the
 * rows. Any failure throws, and Lambda retries the batch (same events, same ids: at least once);
 * nothing is deleted before every sink took the events.
 */
export async function relayStreamRecords(
  deps: RelayDeps,
  records: readonly DynamoDBRecord[],
): Promise<number> {
  const events = records.flatMap((record) => {
    const image = record.dynamodb?.NewImage;
    if (record.eventName !== 'INSERT' || !image) return [];
    const row = unmarshall(image as Record<string, AttributeValue> as never) as {
      pk?: string;
      event?: PipelineEvent;
    };
    return typeof row.pk === 'string' && row.pk.startsWith('O#') && row.event ? [row.event] : [];
  });
  if (events.length === 0) return 0;
  await deps.sink.publish(events);
  await deps.deleteRows(events.map((event) => outboxKey(event.id)));
  return events.length;
}
