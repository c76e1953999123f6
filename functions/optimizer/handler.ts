import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSEvent } from 'aws-lambda';
import { createAdapters } from '../shared/adapters.ts';
import { getConfig } from '../shared/config.ts';
import { configureSharp } from './image/configure.ts';
import { processMessages, type QueueDeps } from './process-messages.ts';

// Built once per process: configuration, sharp's threads, cache and loader allow-list, SDK
// clients and adapters.
const config = getConfig();
configureSharp();
const { moves, sharedFiles, objects } = createAdapters(config);
const deps: QueueDeps = {
  moves,
  sharedFiles,
  objects,
  uploadPrefix: config.uploadPrefix,
  variantsBucket: config.variantsBucket,
  specs: config.processing.variants,
  limits: config.processing,
  maxBytes: config.limits.maxBytes,
  maxReceiveCount: config.processing.maxReceiveCount,
  logger: new Logger({ serviceName: 'photo-intake-optimizer' }),
};

export const handler = (event: SQSEvent, context: Context) => processMessages(deps, event, context);
