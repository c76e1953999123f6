import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Config } from './config.ts';

/** SDK clients for one process, built once from the validated configuration. */
export interface AwsClients {
  s3: S3Client;
  dynamo: DynamoDBDocumentClient;
}

/**
 * Builds the SDK clients. S3 computes request checksums only when an operation requires one, on AWS
 * and locally alike: with the SDK's default (`WHEN_SUPPORTED`) a presigned PUT signs the CRC32 of
 * the empty body it was built with, and S3 then refuses every real upload (aws-sdk-js-v3#6994).
 * With endpoints set (the local stack) S3 uses path-style URLs and validates response checksums
 * only when required, as S3-compatible servers expect.
 */
export function createClients(config: Config): AwsClients {
  const { region, endpoints } = config;
  const s3 = new S3Client({
    region,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    ...(endpoints.s3
      ? { endpoint: endpoints.s3, forcePathStyle: true, responseChecksumValidation: 'WHEN_REQUIRED' }
      : {}),
  });
  const dynamo = DynamoDBDocumentClient.from(
    new DynamoDBClient({ region, ...(endpoints.dynamodb ? { endpoint: endpoints.dynamodb } : {}) }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  return { s3, dynamo };
}

/**
 * The SQS client, for the one function that sends and receives messages itself (the reconciler):
 * built apart from the others so that the API and optimizer bundles leave the SQS client out.
 */
export function createSqsClient(config: Config): SQSClient {
  const { region, endpoints } = config;
  return new SQSClient({ region, ...(endpoints.sqs ? { endpoint: endpoints.sqs } : {}) });
}
