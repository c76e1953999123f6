import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface VariantDeliveryProps {
  variantsBucket: s3.IBucket;
  /** Where the distribution's bucket writes its own server access logs. */
  accessLogBucket: s3.IBucket;
  /** PEM of the RSA 2048 public key that verifies variant URLs (setting `cloudFrontPublicKey`). */
  publicKeyPem: string;
  /** The secret holding the matching PEM private key (setting `cloudFrontPrivateKeySecretArn`). */
  privateKeySecretArn: string;
  corsAllowedOrigins: readonly string[];
}

/**
 * CloudFront in front of the variants bucket: the bucket stays private and only this distribution
 * may read it (origin access control); every request must carry a URL signed with the key group's
 * key, so a URL lives exactly as long as its policy says, and variants are cached at the edge.
 * The API signs the URLs with the private key it reads from Secrets Manager.
 */
export class VariantDelivery extends Construct {
  readonly distribution: cloudfront.Distribution;
  readonly publicKey: cloudfront.PublicKey;
  readonly keyGroup: cloudfront.KeyGroup;
  readonly logBucket: s3.Bucket;
  readonly privateKeySecretArn: string;

  constructor(scope: Construct, id: string, props: VariantDeliveryProps) {
    super(scope, id);
    this.privateKeySecretArn = props.privateKeySecretArn;
    this.publicKey = new cloudfront.PublicKey(this, 'public-key', {
      encodedKey: props.publicKeyPem,
      comment: 'Verifies photo-intake variant URLs; the private key is in Secrets Manager',
    });
    this.keyGroup = new cloudfront.KeyGroup(this, 'key-group', {
      items: [this.publicKey],
      comment: 'Signers of photo-intake variant URLs',
    });

    // CloudFront's standard logs are written with ACLs, so they need a bucket that allows them.
    this.logBucket = new s3.Bucket(this, 'log-bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.OBJECT_WRITER,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
      serverAccessLogsBucket: props.accessLogBucket,
      serverAccessLogsPrefix: 'cdn-log-bucket/',
      lifecycleRules: [{ id: 'expire-cdn-logs', expiration: Duration.days(365) }],
    });

    const cors = new cloudfront.ResponseHeadersPolicy(this, 'cors', {
      comment: 'Lets web apps fetch() variants from the allowed origins',
      corsBehavior: {
        accessControlAllowCredentials: false,
        accessControlAllowHeaders: ['*'],
        accessControlAllowMethods: ['GET', 'HEAD'],
        accessControlAllowOrigins: [...props.corsAllowedOrigins],
        accessControlExposeHeaders: ['ETag', 'Content-Length', 'Content-Type'],
        accessControlMaxAge: Duration.hours(1),
        originOverride: true,
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'distribution', {
      comment: 'photo-intake variants (signed URLs)',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(props.variantsBucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        // Variants never change under their key (a new image gets a new id), so the edge may keep
        // them as long as it likes; the signature query string is not part of the cache key.
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: cors,
        trustedKeyGroups: [this.keyGroup],
        compress: true,
      },
      // North America and Europe edges only: the cheapest price class. Viewers elsewhere are served
      // from the nearest of those. Raise it in lib/constructs/variant-delivery.ts if they matter.
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      enableLogging: true,
      logBucket: this.logBucket,
      logFilePrefix: 'variants/',
    });

    Validations.of(this.distribution).acknowledge(
      {
        id: 'AwsSolutions-CFR1',
        reason:
          'Variants are served to whoever holds a signed URL the API issued to the owner; the service has no regional restriction to enforce.',
      },
      {
        id: 'AwsSolutions-CFR2',
        reason:
          'Every request must carry a URL signed by the API (trusted key group); unsigned requests are refused at the edge before any origin access, which is what a WAF rule would add here.',
      },
      {
        id: 'AwsSolutions-CFR4',
        reason:
          'The distribution uses its default *.cloudfront.net certificate, for which CloudFront fixes the minimum viewer protocol; a custom domain with an ACM certificate (TLSv1.2_2021) is the upgrade, see docs/deploy.md.',
      },
    );
  }

  /** `https://<id>.cloudfront.net`, the base of every variant URL. */
  get url(): string {
    return `https://${this.distribution.distributionDomainName}`;
  }

  /** Lets a role read the private key (GetSecretValue only: the code calls nothing else). */
  grantSigning(role: iam.IGrantable): void {
    role.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.privateKeySecretArn],
      }),
    );
  }
}
