import { Annotations, App, Validations } from 'aws-cdk-lib';
import nag from 'cdk-nag';
import { ImagePipelineStack } from '../lib/image-pipeline-stack.ts';
import { stackNameFor, stageFromContext } from '../lib/settings.ts';

const { AwsSolutionsChecks } = nag;

const app = new App();
// One stage per synth: `-c stage=<name>` (default `dev`), its settings from cdk.json `stages.<name>`.
const { stage, settings, declared } = stageFromContext(app);
const stack = new ImagePipelineStack(app, stackNameFor(stage), {
  stage,
  settings,
  description: `Image upload pipeline (stage ${stage}): presigned S3 uploads, sharp variants, DynamoDB status`,
});
if (!declared) {
  Annotations.of(stack).addWarningV2(
    'image-pipeline:undeclared-stage',
    `Stage ${stage} has no entry in cdk.json "context" -> "stages": every setting is its default. ` +
      'Add the entry so that every deploy of this stage uses the same settings.',
  );
}
// cdk-nag 3 is a policy validation plugin: any unacknowledged finding fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
