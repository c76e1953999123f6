import { SQSClient } from '@aws-sdk/client-sqs';
import type { Config } from './config.ts';
import { Sha256 } from './sha256.ts';

/**
 * The SQS client, for the one function that sends and receives messages itself (the reconciler):
 * built apart from the others (clients.ts) so that bundles carry only the clients their function uses.
 */
export function createSqsClient(config: Config): SQSClient {
  const { region, endpoints } = config;
  return new SQSClient({ region, sha256: Sha256, ...(endpoints.sqs ? { endpoint: endpoints.sqs } : {}) });
}
