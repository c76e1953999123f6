import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Config } from './config.ts';
import { Sha256 } from './sha256.ts';

/**
 * The S3 client. It computes request checksums only when an operation requires one, on AWS and
 * locally alike: with the SDK's default (`WHEN_SUPPORTED`) a presigned PUT signs the CRC32 of the
 * empty body it was built with, and S3 then refuses every real upload (aws-sdk-js-v3#6994). With an
 * endpoint set (the local stack) it uses path-style URLs and validates response checksums only when
 * required, as S3-compatible servers expect.
 */
export function createS3Client(config: Config): S3Client {
  const { region, endpoints } = config;
  return new S3Client({
    region,
    sha256: Sha256,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    ...(endpoints.s3
      ? { endpoint: endpoints.s3, forcePathStyle: true, responseChecksumValidation: 'WHEN_REQUIRED' }
      : {}),
  });
}

/**
 * The DynamoDB document client (undefined attributes are left out of writes). Every client here
 * signs with `Sha256`, which spares Node 24's slow HMAC key checks (sha256.ts).
 */
export function createDocumentClient(config: Config): DynamoDBDocumentClient {
  const { region, endpoints } = config;
  return DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region,
      sha256: Sha256,
      ...(endpoints.dynamodb ? { endpoint: endpoints.dynamodb } : {}),
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
}
