import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { type Config, ConfigError } from '../config.ts';
import { webhookSecret } from './webhooks.ts';

/**
 * The webhook signing secret, in `whsec_` form: `WEBHOOK_SECRET` itself (the local stack), or the
 * Secrets Manager secret `WEBHOOK_SECRET_ARN` names (deployed; read once per process).
 */
export async function loadWebhookSecret(config: Config): Promise<string> {
  const { webhookSecret: value, webhookSecretArn: arn } = config.push;
  if (value) return webhookSecret(value);
  if (!arn) throw new ConfigError('Webhooks need WEBHOOK_SECRET or WEBHOOK_SECRET_ARN.');
  const client = new SecretsManagerClient({ region: config.region });
  try {
    const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: arn }));
    if (!SecretString) throw new ConfigError(`The secret ${arn} has no string value.`);
    return webhookSecret(SecretString);
  } finally {
    client.destroy();
  }
}
