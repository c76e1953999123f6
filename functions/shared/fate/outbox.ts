import { OPEN_SHARDS, outboxKey, outboxPartition } from '../records/schema.ts';
import type { RecordsTable } from '../records/table.ts';
import type { EventSink, PipelineEvent } from './events.ts';

/**
 * Hands the events recorded in the outbox to the sink, then removes them. A crash between the two
 * hands them on again with the same ids (at least once); none is ever lost, since each was written
 * in the same transaction as the move it tells of. Returns how many were handed on.
 */
export async function relayOutbox(table: RecordsTable, sink: EventSink, maxEvents = 500): Promise<number> {
  const events: PipelineEvent[] = [];
  for (let shard = 0; shard < OPEN_SHARDS && events.length < maxEvents; shard++) {
    const { rows } = await table.queryPage(
      {
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': outboxPartition(shard) },
        ConsistentRead: true,
      },
      maxEvents - events.length,
      undefined,
    );
    events.push(...rows.map((row) => row.event as PipelineEvent));
  }
  if (events.length === 0) return 0;
  await sink.publish(events);
  await table.deleteAll(events.map((event) => outboxKey(event.id)));
  return events.length;
}
