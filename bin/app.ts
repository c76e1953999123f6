import { App, Validations } from 'aws-cdk-lib';
import nag from 'cdk-nag';
import { ImagePipelineStack } from '../lib/image-pipeline-stack.ts';
import { settingsFromContext } from '../lib/settings.ts';

const { AwsSolutionsChecks } = nag;

const app = new App();
new ImagePipelineStack(app, 'ImagePipelineStack', {
  settings: settingsFromContext(app),
  description: 'Image upload pipeline: presigned S3 uploads, sharp variants, DynamoDB status',
});
// cdk-nag 3 is a policy validation plugin: any unacknowledged finding fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
