import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { createTable } from '../shared/adapters.ts';
import { ConfigError, getConfig } from '../shared/config.ts';
import { observeEvents } from '../shared/fate/observe.ts';
import { observability } from '../shared/observability.ts';
import { eventBridgeSink, fanOut, webhookQueueSink } from '../shared/push/sinks.ts';
import { createSqsClient } from '../shared/sqs-client.ts';
import { type RelayDeps, relayStreamRecords } from './relay-stream.ts';

// Built once per process: configuration, SDK clients and the three sinks.
const config = getConfig();
const { eventBusName, webhookQueueUrl } = config.push;
if (!eventBusName || !webhookQueueUrl) {
  throw new ConfigError('The relay needs EVENT_BUS_NAME and WEBHOOK_QUEUE_URL.');
}
const table = createTable(config);
const { logger, metrics, instrument } = observability('relay');
const deps: RelayDeps = {
  // Metrics last: a retry after a failed put does not count twice what it did not deliver.
  sink: fanOut(
    eventBridgeSink(new EventBridgeClient({ region: config.region }), eventBusName),
    webhookQueueSink(createSqsClient(config), webhookQueueUrl),
    observeEvents(metrics, logger),
  ),
  deleteRows: (keys) => table.deleteAll(keys),
};

/** DynamoDB Streams on the table, filtered to inserted outbox rows (`pk` begins with `O#`). */
export const handler = instrument((event: DynamoDBStreamEvent) => relayStreamRecords(deps, event.Records));
