import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ROUTES } from '../../contract/routes.ts';
import type { PipelineSettings } from '../settings.ts';
import { sharedEnvironment, toLambdaEnvironment, UPLOAD_PREFIX } from './function-environment.ts';
import { acknowledgeObjectWildcard } from './nag-acknowledgements.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { Storage } from './storage.ts';

export interface UploadApiProps {
  settings: PipelineSettings;
  storage: Storage;
}

/**
 * The public HTTP API: exactly the routes in `functions/api/routes.ts`, all served by one Lambda,
 * with a JWT authorizer on every authenticated route, throttling and access logs on the stage.
 */
export class UploadApi extends Construct {
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly function: PipelineFunction;
  readonly routes: apigw.HttpRoute[];

  constructor(scope: Construct, id: string, props: UploadApiProps) {
    super(scope, id);
    const { settings, storage } = props;

    this.function = new PipelineFunction(this, 'handler', {
      entry: 'functions/api/handler.ts',
      description: 'the image pipeline HTTP API',
      memorySize: 512,
      timeout: Duration.seconds(10),
      environment: toLambdaEnvironment(
        sharedEnvironment(
          settings,
          {
            tableName: storage.table.tableName,
            uploadBucket: storage.uploadBucket.bucketName,
            variantsBucket: storage.variantsBucket.bucketName,
          },
          'photo-intake-api',
        ),
      ),
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
    // Signing a PUT that carries the incoming tag needs PutObjectTagging as well as PutObject.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:PutObjectTagging', 's3:GetObject', 's3:DeleteObject'],
        resources: [storage.uploadBucket.arnForObjects(`${UPLOAD_PREFIX}*`)],
      }),
    );
    // Presigned GETs of variants, and removal when an image is deleted.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:DeleteObject'],
        resources: [storage.variantsBucket.arnForObjects('*')],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [storage.uploadBucket.bucketArn, storage.variantsBucket.bucketArn],
      }),
    );
    storage.grantTableData(role);
    acknowledgeObjectWildcard(
      role,
      storage.uploadBucket,
      `${UPLOAD_PREFIX}*`,
      'The API signs PUTs for keys it generates per upload and deletes originals; uploads/* is the narrowest key pattern.',
    );
    acknowledgeObjectWildcard(
      role,
      storage.variantsBucket,
      '*',
      "The API signs GETs for and deletes any image's variants (one folder per image id); the bucket holds nothing else.",
    );
  }

  /** The API's base URL (the `$default` stage). */
  get url(): string {
    return this.stage.url;
  }
}
