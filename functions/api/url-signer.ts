import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Config } from '../shared/config.ts';
import { CloudFrontUrlSigner, privateKeyFromSecret } from '../shared/storage/cloudfront-url-signer.ts';
import type { UrlSigner } from '../shared/storage/ports.ts';

/**
 * The API's URL signer. Uploads are always presigned S3 PUTs. Variant GETs are signed by CloudFront
 * when the deployment has a distribution (a URL then lives exactly as long as promised), and
 * presigned S3 GETs otherwise. Only the API signs variant URLs, so only its bundle carries the
 * CloudFront signer and the Secrets Manager client.
 */
export function apiUrlSigner(config: Config, s3: UrlSigner): UrlSigner {
  if (!config.cdn) return s3;
  const cloudFront = new CloudFrontUrlSigner({
    distributionUrl: config.cdn.url,
    bucket: config.variantsBucket,
    keyPairId: config.cdn.keyPairId,
    loadPrivateKey: privateKeyFromSecret(
      new SecretsManagerClient({ region: config.region }),
      config.cdn.privateKeySecretArn,
    ),
  });
  return {
    presignPut: (request) => s3.presignPut(request),
    presignGet: (bucket, key, minValiditySeconds) => cloudFront.presignGet(bucket, key, minValiditySeconds),
  };
}
