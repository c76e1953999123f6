import { join } from 'node:path';
import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

const PROJECT_ROOT = join(import.meta.dirname, '..', '..');

/**
 * Modules the bundles take from elsewhere. `node:http` comes through `node-http.cjs`: the SDK imports
 * it as an ES module, and building that import made Node load its fetch implementation at every cold
 * start (20-30 ms of the API's import, docs/performance.md, Cold start), though no function uses it.
 */
export const BUNDLE_ALIASES: Readonly<Record<string, string>> = {
  'node:http': join(import.meta.dirname, 'node-http.cjs'),
  http: join(import.meta.dirname, 'node-http.cjs'),
};

export interface PipelineFunctionProps {
  /** The handler module, relative to the project root, exporting `handler`. */
  entry: string;
  description: string;
  memorySize: number;
  timeout: Duration;
  /** Built by `functionEnvironment` (see function-environment.ts). */
  environment: Record<string, string>;
  /** Packages installed into the asset instead of bundled (native code such as sharp). */
  nodeModules?: string[];
  /** Lambda's CPU; native packages are installed for it. */
  architecture: 'arm64' | 'x86_64';
}

/**
 * One Lambda function of the pipeline: Node.js 24 (arm64 unless the stage says otherwise), bundled
 * as minified ESM with everything it imports, the AWS SDK included, with its own log group (bounded
 * retention) and its own role. The role only gets permission to write to that log group; every
 * other permission is granted by the construct that wires the function up.
 */
export class PipelineFunction extends Construct {
  readonly fn: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    super(scope, id);
    this.timeout = props.timeout;
    this.logGroup = new logs.LogGroup(this, 'logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An own role instead of AWSLambdaBasicExecutionRole, whose log permissions cover every log group.
    this.role = new iam.Role(this, 'role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs ${props.description}`,
    });
    this.logGroup.grantWrite(this.role);

    this.fn = new nodejs.NodejsFunction(this, 'function', {
      entry: join(PROJECT_ROOT, props.entry),
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: props.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      // No NODE_OPTIONS=--enable-source-maps: decoding the bundle's source map at import cost the API
      // 43-85 ms of every cold start (docs/performance.md, Cold start). Names are kept instead.
      environment: props.environment,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        minify: true,
        // Function and class names survive minification, so stack traces in the logs name them.
        keepNames: true,
        sourceMap: false,
        // The SDK is bundled at the versions package-lock.json pins, not taken from the runtime: the
        // code imports subpaths (`@smithy/core/endpoints`, ...) that only recent versions have, and
        // the runtime's copy changes without notice. Only `nodeModules` stay outside the bundle.
        externalModules: [],
        esbuildArgs: Object.fromEntries(
          Object.entries(BUNDLE_ALIASES).map(([name, path]) => [`--alias:${name}`, path]),
        ),
        // Bundled CommonJS dependencies call `require`, which ESM modules do not have.
        banner:
          "import { createRequire as __pipelineCreateRequire } from 'node:module'; const require = __pipelineCreateRequire(import.meta.url);",
        ...(props.nodeModules
          ? {
              nodeModules: props.nodeModules,
              // npm installs the native packages for Lambda's platform, not for the build machine.
              environment: {
                npm_config_os: 'linux',
                npm_config_cpu: props.architecture === 'arm64' ? 'arm64' : 'x64',
                npm_config_libc: 'glibc',
              },
            }
          : {}),
      },
    });
  }
}
