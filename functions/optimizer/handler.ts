import type { Context, SQSEvent } from 'aws-lambda';
import { createAdapters } from '../shared/adapters.ts';
import { getConfig } from '../shared/config.ts';
import { observability } from '../shared/observability.ts';
import { configureSharp } from './image/configure.ts';
import { processMessages, queueDepsFrom } from './process-messages.ts';

// Built once per process: configuration, sharp's threads, cache and loader allow-list, SDK
// clients and adapters.
const config = getConfig();
configureSharp();
const { moves, sharedFiles, objects } = createAdapters(config);
const { logger, instrument } = observability('optimizer');
const deps = queueDepsFrom(config, { moves, sharedFiles, objects }, logger);

export const handler = instrument((event: SQSEvent, context: Context) =>
  processMessages(deps, event, context),
);
