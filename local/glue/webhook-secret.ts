import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Where the local stack keeps the webhook secret it made. */
export const webhookSecretPath = (dataDir: string) => path.join(dataDir, 'webhook-secret');

/**
 * The local stack's webhook signing secret: `WEBHOOK_SECRET` when set, else the one kept in
 * DATA_DIR, else a new one (`whsec_` + 32 random bytes in base64), made once and kept there so that
 * receivers keep verifying across restarts.
 */
export async function localWebhookSecret(dataDir: string, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  const file = webhookSecretPath(dataDir);
  const kept = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (kept) return kept;
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  // `wx`: if another start made one meanwhile, keep theirs.
  await writeFile(file, `${secret}\n`, { flag: 'wx', mode: 0o600 }).catch(() => undefined);
  return (await readFile(file, 'utf8')).trim();
}
