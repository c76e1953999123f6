import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';

/**
 * Acknowledges cdk-nag's IAM5 finding for an object-level wildcard (`<bucket>/<pattern>`) on the
 * role's own policy only. S3 object permissions cannot name keys that do not exist yet, so a key
 * pattern is the narrowest resource there is.
 */
export function acknowledgeObjectWildcard(
  role: iam.Role,
  bucket: s3.IBucket,
  pattern: string,
  reason: string,
): void {
  const stack = Stack.of(role);
  const bucketId = stack.getLogicalId(bucket.node.defaultChild as CfnElement);
  Validations.of(role.node.findChild('DefaultPolicy')).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${pattern}]`,
    reason,
  });
}
