import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { TABLE_SCHEMA } from '../../functions/shared/records/schema.ts';
// The tag every presigned PUT sets on an upload; the optimizer retags an original once processed.
import { INCOMING_TAG } from '../../functions/shared/storage/object-keys.ts';
import { UPLOAD_PREFIX } from './function-environment.ts';
import { acknowledgeObjectWildcard } from './nag-acknowledgements.ts';

/** Uploads still tagged incoming after this long were abandoned (or never processed) and are removed. */
export const ABANDONED_UPLOAD_EXPIRY = Duration.days(7);

/** DynamoDB item actions a function may be granted on the table. */
export type RecordAction =
  | 'GetItem'
  | 'BatchGetItem'
  | 'Query'
  | 'PutItem'
  | 'UpdateItem'
  | 'DeleteItem'
  | 'BatchWriteItem'
  | 'ConditionCheckItem';
type IndexName = keyof typeof TABLE_SCHEMA.indexes;
/**
 * S3 object actions a function may be granted. Presigning needs the action the URL will perform
 * (the URL carries the signer's authority); `HeadObject` is authorized as `s3:GetObject`, and
 * `DeleteObjects` as `s3:DeleteObject` per key.
 */
export type ObjectAction = 's3:GetObject' | 's3:PutObject' | 's3:PutObjectTagging' | 's3:DeleteObject';

/** The shape of one `TABLE_SCHEMA` index; every key attribute of the design is a string. */
interface IndexSpec {
  indexName: string;
  partitionKey: string;
  sortKey?: string;
  projection?: 'ALL' | 'KEYS_ONLY';
}
const TABLE_INDEXES: readonly IndexSpec[] = Object.values(TABLE_SCHEMA.indexes);

/** The tag the optimizer puts on an original once its variants exist (`PROCESSED_TAGS` in functions/). */
export const PROCESSED_TAG = { key: 'pipeline-state', value: 'processed' } as const;

/** The storage classes processed originals may move to (setting `originalsStorageClass`). */
const ORIGINALS_STORAGE_CLASSES = {
  STANDARD_IA: s3.StorageClass.INFREQUENT_ACCESS,
  INTELLIGENT_TIERING: s3.StorageClass.INTELLIGENT_TIERING,
  GLACIER_IR: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
} as const;

export interface StorageProps {
  corsAllowedOrigins: readonly string[];
  tableDeletionProtection: boolean;
  /** Processed originals move to this storage class this many days after upload. */
  originalsTransition: { days: number; storageClass: keyof typeof ORIGINALS_STORAGE_CLASSES };
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
  /** The table's global secondary indexes, by name. */
  readonly indexNames: readonly string[] = TABLE_INDEXES.map((index) => index.indexName);

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
        {
          // Originals are read once, by the optimizer, and then only kept: they become the bulk of
          // the storage bill (docs/cost.md), and a colder class is the largest lever on it.
          id: 'transition-processed-originals',
          prefix: UPLOAD_PREFIX,
          tagFilters: { [PROCESSED_TAG.key]: PROCESSED_TAG.value },
          transitions: [
            {
              storageClass: ORIGINALS_STORAGE_CLASSES[props.originalsTransition.storageClass],
              transitionAfter: Duration.days(props.originalsTransition.days),
            },
          ],
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
   * What a function does with the records, action by action: `table` on the table's items, and
   * `Query` on the named indexes only. Nothing is implied (no `DescribeTable`, no stream actions,
   * no `<table>/index/*`). `TransactWriteItems` needs no action of its own: IAM authorizes each of
   * its items as the `PutItem`/`UpdateItem`/`DeleteItem`/`ConditionCheckItem` it is.
   */
  grantRecords(
    grantee: iam.IGrantable,
    access: { table: readonly RecordAction[]; queryIndexes?: readonly IndexName[] },
  ): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: access.table.map((action) => `dynamodb:${action}`),
        resources: [this.table.tableArn],
      }),
    );
    if (access.queryIndexes && access.queryIndexes.length > 0) {
      grantee.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['dynamodb:Query'],
          resources: access.queryIndexes.map(
            (name) => `${this.table.tableArn}/index/${TABLE_SCHEMA.indexes[name].indexName}`,
          ),
        }),
      );
    }
  }

  /**
   * Object actions on the originals (`uploads/*`, the only keys there are). `list` adds
   * `s3:ListBucket` on the bucket, without which S3 answers a missing key with 403, not 404.
   * `why` acknowledges cdk-nag's wildcard finding: object keys that do not exist yet cannot be named.
   */
  grantUploads(
    role: iam.Role,
    actions: readonly ObjectAction[],
    options: { list?: boolean; why: string },
  ): void {
    this.#grantObjects(role, this.uploadBucket, `${UPLOAD_PREFIX}*`, actions, options);
  }

  /** Object actions on the variants (`<imageId>/<variant>.<ext>`, the whole bucket); as `grantUploads`. */
  grantVariants(
    role: iam.Role,
    actions: readonly ObjectAction[],
    options: { list?: boolean; why: string },
  ): void {
    this.#grantObjects(role, this.variantsBucket, '*', actions, options);
  }

  #grantObjects(
    role: iam.Role,
    bucket: s3.Bucket,
    pattern: string,
    actions: readonly ObjectAction[],
    options: { list?: boolean; why: string },
  ): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: [...actions], resources: [bucket.arnForObjects(pattern)] }),
    );
    if (options.list) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }),
      );
    }
    acknowledgeObjectWildcard(role, bucket, pattern, options.why);
  }
}
