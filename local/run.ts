import { readLocalSettings } from './settings.ts';
import { startLocalStack } from './stack.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);
const settings = readLocalSettings();
const stack = await startLocalStack(settings, log);
process.stdout.write(
  `webhooks: signed with ${stack.webhookSecret} (verify with any Standard Webhooks library)\n`,
);
process.stdout.write(`metrics: ${stack.apiUrl}/metrics (Prometheus text)\n`);
process.stdout.write(`storage: s3 endpoint ${stack.s3Endpoint} (access key S3RVER, secret S3RVER)\n`);
// The table server, for inspecting records (and for benchmarks that write to the same one).
process.stdout.write(`records: dynamodb endpoint ${stack.dynamodbEndpoint} (table ${stack.tableName})\n`);
// The contract's ready line: tools wait for it and read the URL from it.
process.stdout.write(`ready: photo-intake local stack at ${stack.apiUrl} (data in ${settings.dataDir})\n`);

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) {
    log(`${signal} again: exiting now; unfinished work resumes at the next start.`);
    process.exit(1);
  }
  stopping = true;
  log(`${signal}: finishing work in flight, then stopping (press Ctrl-C again to exit at once)...`);
  stack.stop().then(
    () => {
      log('stopped.');
      process.exit(0);
    },
    (error: unknown) => {
      log(`error while stopping: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
