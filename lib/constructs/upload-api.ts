import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ROUTES } from '../../contract/routes.ts';
import type { PipelineSettings } from '../settings.ts';
import { sharedEnvironment, toLambdaEnvironment } from './function-environment.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { Storage } from './storage.ts';
import type { VariantDelivery } from './variant-delivery.ts';

export interface UploadApiProps {
  settings: PipelineSettings;
  storage: Storage;
  /** CloudFront in front of the variants: the API then signs variant URLs for it, never S3 GETs. */
  delivery?: VariantDelivery | undefined;
}

/**
 * The public HTTP API: exactly the routes in `contract/routes.ts`, all served by one Lambda,
 * with a JWT authorizer on every authenticated route, throttling and access logs on the stage.
 */
export class UploadApi extends Construct {
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly function: PipelineFunction;
  readonly routes: apigw.HttpRoute[];

  constructor(scope: Construct, id: string, props: UploadApiProps) {
    super(scope, id);
    const { settings, storage, delivery } = props;

    this.function = new PipelineFunction(this, 'handler', {
      entry: 'functions/api/handler.ts',
      description: 'the image pipeline HTTP API',
      memorySize: 512,
      timeout: Duration.seconds(10),
      architecture: settings.lambdaArchitecture,
      environment: toLambdaEnvironment({
        ...sharedEnvironment(
          settings,
          {
            tableName: storage.table.tableName,
            uploadBucket: storage.uploadBucket.bucketName,
            variantsBucket: storage.variantsBucket.bucketName,
          },
          'photo-intake-api',
        ),
        ...(delivery && {
          VARIANTS_CDN_URL: delivery.url,
          CLOUDFRONT_KEY_PAIR_ID: delivery.publicKey.publicKeyId,
          CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: delivery.privateKeySecretArn,
        }),
      }),
    });

    this.httpApi = new apigw.HttpApi(this, 'http-api', {
      description: 'Image upload pipeline API',
      // The default stage is added below, with throttling and access logs.
      createDefaultStage: false,
      corsPreflight: {
        allowOrigins: [...settings.corsAllowedOrigins],
        allowMethods: [apigw.CorsHttpMethod.GET, apigw.CorsHttpMethod.POST, apigw.CorsHttpMethod.DELETE],
        allowHeaders: ['authorization', 'content-type', 'if-none-match'],
        exposeHeaders: ['etag', 'retry-after'],
        maxAge: Duration.hours(1),
      },
    });

    const accessLogs = new logs.LogGroup(this, 'access-logs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = this.httpApi.addStage('default-stage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: settings.apiThrottle,
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            requestTime: '$context.requestTime',
            routeKey: '$context.routeKey',
            status: '$context.status',
            responseLength: '$context.responseLength',
            responseLatency: '$context.responseLatency',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            authorizerError: '$context.authorizer.error',
          }),
        ),
      },
    });

    const authorizer = new HttpJwtAuthorizer('jwt-authorizer', settings.jwtIssuer, {
      jwtAudience: [...settings.jwtAudience],
    });
    const integration = new HttpLambdaIntegration('api-handler', this.function.fn);
    this.routes = ROUTES.flatMap((route) => {
      const created = this.httpApi.addRoutes({
        path: route.path,
        methods: [apigw.HttpMethod[route.method]],
        integration,
        ...(route.authenticated ? { authorizer } : {}),
      });
      if (!route.authenticated) {
        for (const publicRoute of created) {
          Validations.of(publicRoute).acknowledge({
            id: 'AwsSolutions-APIG4',
            reason: `${route.method} ${route.path} is public by the API contract (liveness probe or the API's own OpenAPI document); it reads no data.`,
          });
        }
      }
      return created;
    });

    const role = this.function.role;
    // Batches are written in one BatchWriteItem per 25 rows and read with one Query; images are found
    // through byImage; the quota counts open uploads over byOpenUpload and the request rate with an
    // UpdateItem; dedup rows are read (BatchGetItem, GetItem), counted (UpdateItem) and removed
    // (DeleteItem), as are deleted images. PutItem and UpdateItem also cover the batch-count
    // transactions of DELETE (TransactWriteItems is authorized per item as PutItem/UpdateItem).
    storage.grantRecords(role, {
      table: ['GetItem', 'BatchGetItem', 'Query', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem'],
      queryIndexes: ['byImage', 'byOpenUpload'],
    });
    // Signing a PUT that carries the incoming tag needs PutObjectTagging as well as PutObject;
    // DELETE removes the original; a fresh upload URL is refused once the bytes landed (HeadObject,
    // authorized as GetObject; a missing key must be a 404, hence ListBucket).
    storage.grantUploads(role, ['s3:PutObject', 's3:PutObjectTagging', 's3:DeleteObject', 's3:GetObject'], {
      list: true,
      why: 'The API signs PUTs for keys it generates per upload, checks whether they landed and deletes originals; uploads/* is the narrowest key pattern.',
    });
    // DELETE removes the variants. Without CloudFront the API presigns S3 GETs of them, which needs
    // GetObject; with it, the API reads the CloudFront private key instead.
    storage.grantVariants(role, delivery ? ['s3:DeleteObject'] : ['s3:GetObject', 's3:DeleteObject'], {
      why: delivery
        ? "The API deletes any image's variants, one folder per image id; the bucket holds nothing else."
        : "The API signs GETs for and deletes any image's variants, one folder per image id; the bucket holds nothing else.",
    });
    delivery?.grantSigning(role);
  }

  /** The API's base URL (the `$default` stage). */
  get url(): string {
    return this.stage.url;
  }
}
