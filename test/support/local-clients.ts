import { S3Client } from '@aws-sdk/client-s3';

/** The local S3 server's account (s3rver's default); other local servers take any credentials. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** An S3 client for the local S3 server, set up as the handlers' is for S3-compatible endpoints. */
export const localS3Client = (endpoint: string) =>
  new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: LOCAL_CREDENTIALS,
  });
