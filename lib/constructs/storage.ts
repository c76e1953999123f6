import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { TABLE_SCHEMA } from '../../functions/shared/records/schema.ts';
// The tag every presigned PUT sets on an upload; the optimizer retags an original once processed.
import { INCOMING_TAG } from '../../functions/shared/storage/object-keys.ts';
import { UPLOAD_PREFIX } from './function-environment.ts';

/** Uploads still tagged incoming after this long were abandoned (or never processed) and are removed. */
export const ABANDONED_UPLOAD_EXPIRY = Duration.days(7);

/** The shape of one `TABLE_SCHEMA` index; every key attribute of the design is a string. */
interface IndexSpec {
  indexName: string;
  partitionKey: string;
  sortKey?: string;
  projection?: 'ALL' | 'KEYS_ONLY';
}
const TABLE_INDEXES: readonly IndexSpec[] = Object.values(TABLE_SCHEMA.indexes);

export interface StorageProps {
  corsAllowedOrigins: readonly string[];
  tableDeletionProtection: boolean;
}

/**
 * Where the pipeline keeps things: the upload bucket (originals, written by browsers with presigned
 * PUTs), the variants bucket (written by the optimizer, read through presigned GETs), the bucket
 * both log their server access to, and the table of batches and images. Data is retained when the
 * stack is deleted.
 */
export class Storage extends Construct {
  readonly uploadBucket: s3.Bucket;
  readonly variantsBucket: s3.Bucket;
  readonly accessLogBucket: s3.Bucket;
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    const privateBucket = {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
    } satisfies s3.BucketProps;

    // Server access log delivery only supports SSE-S3 on the target bucket.
    this.accessLogBucket = new s3.Bucket(this, 'access-log-bucket', {
      ...privateBucket,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
    });

    this.uploadBucket = new s3.Bucket(this, 'upload-bucket', {
      ...privateBucket,
      serverAccessLogsBucket: this.accessLogBucket,
      serverAccessLogsPrefix: 'upload-bucket/',
      cors: [
        {
          allowedMethods: [s3.HttpMethods.PUT],
          allowedOrigins: [...props.corsAllowedOrigins],
          allowedHeaders: [
            'content-type',
            'content-length',
            'x-amz-checksum-sha256',
            'x-amz-tagging',
            'x-amz-sdk-checksum-algorithm',
          ],
          exposedHeaders: ['ETag'],
          maxAge: 3600,
        },
      ],
      lifecycleRules: [
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        {
          id: 'expire-abandoned-uploads',
          prefix: UPLOAD_PREFIX,
          tagFilters: { [INCOMING_TAG.key]: INCOMING_TAG.value },
          expiration: ABANDONED_UPLOAD_EXPIRY,
        },
      ],
    });

    this.variantsBucket = new s3.Bucket(this, 'variants-bucket', {
      ...privateBucket,
      serverAccessLogsBucket: this.accessLogBucket,
      serverAccessLogsPrefix: 'variants-bucket/',
      // Presigned GETs work in <img> without CORS; this lets web apps fetch() them too.
      cors: [
        {
          allowedMethods: [s3.HttpMethods.GET, s3.HttpMethods.HEAD],
          allowedOrigins: [...props.corsAllowedOrigins],
          allowedHeaders: ['*'],
          exposedHeaders: ['ETag', 'Content-Length', 'Content-Type'],
          maxAge: 3600,
        },
      ],
      lifecycleRules: [
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    this.table = new dynamodb.Table(this, 'table', {
      partitionKey: { name: TABLE_SCHEMA.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_SCHEMA.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE_SCHEMA.ttlAttribute,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: props.tableDeletionProtection,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of TABLE_INDEXES) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
        ...(index.sortKey ? { sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING } } : {}),
        projectionType: dynamodb.ProjectionType[index.projection ?? 'ALL'],
      });
    }
  }

  /**
   * Item reads and writes on the table and its indexes, named one by one: `grantReadWriteData`
   * would grant `<table>/index/*` and stream actions the functions never use.
   */
  grantTableData(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [
          'dynamodb:GetItem',
          'dynamodb:BatchGetItem',
          'dynamodb:Query',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:ConditionCheckItem',
          'dynamodb:DescribeTable',
        ],
        resources: [
          this.table.tableArn,
          ...TABLE_INDEXES.map((index) => `${this.table.tableArn}/index/${index.indexName}`),
        ],
      }),
    );
  }
}
