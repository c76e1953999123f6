/**
 * `photo-intake`: the command-line client.
 *
 *   photo-intake upload <file|dir>... [--api URL] [--token T] [--concurrency N] [--wait] [--json] [--state FILE]
 *   photo-intake status <batchId> [--api URL] [--token T] [--wait] [--json]
 *
 * Exit status: 0 every file ready (without --wait: every file uploaded or already there), 2 any
 * file rejected, failed or expired, 1 usage or connection errors, 130 interrupted.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BatchView, ItemStatus, ItemView } from '../../contract/index.ts';
import { describe } from '../api.ts';
import { PhotoIntakeError } from '../errors.ts';
import { createClient, type PhotoIntakeClient } from '../index.ts';
import { collectFiles, fileSource } from '../node.ts';
import type { FileOutcome, UploadState } from '../upload.ts';
import { type Display, openDisplay } from './display.ts';

const USAGE = `Usage:
  photo-intake upload <file|dir>... [--api URL] [--token T] [--concurrency N] [--wait] [--json] [--state FILE]
  photo-intake status <batchId> [--api URL] [--token T] [--wait] [--json]

  --api URL          the API (default: $PHOTO_INTAKE_API, else http://127.0.0.1:3000)
  --token T          bearer token (default: $PHOTO_INTAKE_TOKEN); on the local stack, the owner id
  --concurrency N    uploads at once (default 4)
  --wait             wait until every file is final (ready, failed, rejected or expired)
  --json             print one JSON document on stdout: {"items": [{"path", "imageId", "status", "error"}]}
  --state FILE       where a run keeps what it did, so that a rerun uploads only the rest
                     (default: .photo-intake-state.json in the current folder)

Exit status: 0 every file ready (without --wait: uploaded or already there), 2 any file rejected,
failed or expired, 1 usage or connection errors.`;

export const EXIT = { ok: 0, connection: 1, usage: 1, files: 2, interrupted: 130 } as const;

class UsageError extends Error {}

/** One line of `--json` output. */
export interface ItemReport {
  path: string;
  imageId?: string;
  status: string;
  error?: { code: string };
}

interface StateFile {
  version: 1;
  api: string;
  /** A hash of the token: a state made for another owner is not reused (the token is not stored). */
  owner: string;
  upload: UploadState;
}

const BAD: ReadonlySet<string> = new Set(['rejected', 'failed', 'expired']);
const FINAL: ReadonlySet<string> = new Set(['ready', 'rejected', 'failed', 'expired']);

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      api: { type: 'string' },
      token: { type: 'string' },
      concurrency: { type: 'string' },
      wait: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      state: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  const api = values.api ?? process.env.PHOTO_INTAKE_API ?? 'http://127.0.0.1:3000';
  const token = values.token ?? process.env.PHOTO_INTAKE_TOKEN;
  const concurrency = values.concurrency === undefined ? 4 : Number(values.concurrency);
  if (values.help) return { help: true as const };
  if (command !== 'upload' && command !== 'status') throw new UsageError('Say `upload` or `status`.');
  if (!token) throw new UsageError('No token: pass --token or set PHOTO_INTAKE_TOKEN.');
  if (!/^https?:\/\//.test(api)) throw new UsageError(`--api must be an http(s) URL, not "${api}".`);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError('--concurrency must be a whole number from 1 to 64.');
  }
  if (rest.length === 0) {
    throw new UsageError(command === 'upload' ? 'Name at least one file or folder.' : 'Name a batch id.');
  }
  if (command === 'status' && rest.length > 1) throw new UsageError('Name one batch id.');
  return {
    help: false as const,
    command,
    args: rest,
    api,
    token,
    concurrency,
    wait: values.wait,
    json: values.json,
    stateFile: path.resolve(values.state ?? '.photo-intake-state.json'),
  };
}

type Options = Exclude<ReturnType<typeof parse>, { help: true }>;

export async function main(argv: string[]): Promise<number> {
  let options: Options;
  try {
    const parsed = parse(argv);
    if (parsed.help) {
      process.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    options = parsed;
  } catch (error) {
    process.stderr.write(
      `photo-intake: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`,
    );
    return EXIT.usage;
  }
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    controller.abort(new PhotoIntakeError('Interrupted', 'Interrupted.'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const client = createClient({ api: options.api, token: options.token });
  try {
    // A wrong address is said at once, not after a minute of retries.
    await client.health(controller.signal);
    return options.command === 'upload'
      ? await upload(client, options, controller.signal)
      : await status(client, options, controller.signal);
  } catch (error) {
    if (controller.signal.aborted) {
      const kept = options.command === 'upload' ? ` (what is done is kept in ${options.stateFile})` : '';
      process.stderr.write(`photo-intake: interrupted${kept}; run the same command again to carry on.\n`);
      return EXIT.interrupted;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`photo-intake: ${error.message}\n`);
      return EXIT.usage;
    }
    const message = error instanceof PhotoIntakeError ? `${error.code}: ${error.message}` : describe(error);
    process.stderr.write(`photo-intake: ${message}\n`);
    return EXIT.connection;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function upload(client: PhotoIntakeClient, options: Options, signal: AbortSignal): Promise<number> {
  let paths: string[];
  try {
    paths = await collectFiles(options.args);
  } catch (error) {
    throw new UsageError(describe(error));
  }
  if (paths.length === 0) throw new UsageError('No files found in what was named.');
  const sources = await Promise.all(paths.map(fileSource));
  const state = new StateWriter(options.stateFile, options.api, options.token);
  const display = openDisplay({ json: options.json, total: sources.length, wait: options.wait });
  const reports: ItemReport[] = paths.map((file) => ({ path: file, status: 'queued' }));
  const outcomes: FileOutcome[] = [];
  try {
    const result = await client.uploadFiles(sources, {
      concurrency: options.concurrency,
      signal,
      ...(state.saved ? { resume: state.saved } : {}),
      onStateChange: (upload) => state.update(upload),
      onProgress: (progress) => display.progress(progress),
      onFile: (file) => {
        const report = reports[file.index] as ItemReport;
        setReport(report, file.status, file.imageId, file.error?.code);
        if (isFinalUpload(file.status)) display.file(report, file.bytesDone);
      },
    });
    outcomes.push(...result.files);
    if (options.wait) await waitForFiles(client, outcomes, reports, display, signal);
  } finally {
    state.flush();
    display.stop();
  }
  return finish(reports, options, display);
}

/** Polls each batch until every file of this run that reached the service is final. */
async function waitForFiles(
  client: PhotoIntakeClient,
  outcomes: readonly FileOutcome[],
  reports: ItemReport[],
  display: Display,
  signal: AbortSignal,
): Promise<void> {
  const byImage = new Map<string, ItemReport>();
  const byBatch = new Map<string, Set<string>>();
  for (const outcome of outcomes) {
    if (
      !outcome.imageId ||
      !outcome.batchId ||
      outcome.status === 'failed' ||
      outcome.status === 'rejected'
    ) {
      continue;
    }
    byImage.set(outcome.imageId, reports[outcome.index] as ItemReport);
    const ids = byBatch.get(outcome.batchId) ?? new Set<string>();
    ids.add(outcome.imageId);
    byBatch.set(outcome.batchId, ids);
  }
  display.waiting(byImage.size);
  await Promise.all(
    [...byBatch].map(([batchId, ids]) =>
      client.waitForBatch(batchId, {
        signal,
        maxIntervalMs: 2_000,
        onChange: (batch) => {
          for (const item of batch.items) {
            const report = imageIdOf(item) ? byImage.get(imageIdOf(item) as string) : undefined;
            if (!report || !ids.has(imageIdOf(item) as string)) continue;
            const wasFinal = FINAL.has(report.status);
            setReport(report, item.status, imageIdOf(item), item.error?.code);
            if (!wasFinal && FINAL.has(report.status)) display.final(report);
          }
        },
        until: (batch) => finalFor(batch, ids),
      }),
    ),
  );
}

async function status(client: PhotoIntakeClient, options: Options, signal: AbortSignal): Promise<number> {
  const batchId = options.args[0] as string;
  const display = openDisplay({ json: options.json, total: 0, wait: false });
  let batch: BatchView;
  if (options.wait) {
    batch = await client.waitForBatch(batchId, { signal, maxIntervalMs: 2_000 });
  } else {
    const page = await client.getBatch(batchId, { signal });
    if (page.notModified) throw new Error('unexpected 304');
    batch = page.view;
  }
  const reports = [...batch.items]
    .sort((a, b) => a.index - b.index)
    .map((item) => {
      const report: ItemReport = { path: item.name, status: item.status };
      setReport(report, item.status, imageIdOf(item), item.error?.code);
      return report;
    });
  if (!options.json) {
    for (const report of reports) display.final(report);
    process.stdout.write(
      `batch ${batchId}: ${batch.complete ? 'complete' : 'not complete'} ${summary(reports)}\n`,
    );
  }
  return finish(reports, options, display);
}

function finish(reports: readonly ItemReport[], options: Options, display: Display): number {
  if (options.json) process.stdout.write(`${JSON.stringify({ items: reports })}\n`);
  else display.summary(summary(reports));
  if (reports.some((report) => BAD.has(report.status))) return EXIT.files;
  if (reports.some((report) => report.error?.code === 'NetworkError')) return EXIT.connection;
  const good = options.wait || options.command === 'status' ? ['ready'] : ['ready', 'uploaded'];
  return reports.every((report) => good.includes(report.status)) ? EXIT.ok : EXIT.files;
}

function summary(reports: readonly ItemReport[]): string {
  const counts = new Map<string, number>();
  for (const report of reports) counts.set(report.status, (counts.get(report.status) ?? 0) + 1);
  return [...counts].map(([name, count]) => `${count} ${name}`).join(', ');
}

function setReport(
  report: ItemReport,
  status: string,
  imageId: string | undefined,
  code: string | undefined,
) {
  report.status = status;
  if (imageId) report.imageId = imageId;
  if (code) report.error = { code };
  else delete report.error;
}

const isFinalUpload = (status: string) =>
  status === 'uploaded' || status === 'ready' || status === 'rejected' || status === 'failed';

const imageIdOf = (item: ItemView) => ('imageId' in item ? item.imageId : undefined);

function finalFor(batch: BatchView, ids: ReadonlySet<string>): boolean {
  const statuses = new Map<string, ItemStatus>();
  for (const item of batch.items) {
    const id = imageIdOf(item);
    if (id) statuses.set(id, item.status);
  }
  return [...ids].every((id) => {
    const found = statuses.get(id);
    // An image deleted meanwhile leaves the batch: nothing more to wait for.
    return found === undefined || FINAL.has(found);
  });
}

/**
 * The state file: read once, written at most every 250 ms while a run goes (each write whole, to a
 * temporary file renamed into place), and once more at the end.
 */
class StateWriter {
  readonly saved: UploadState | undefined;
  readonly #file: string;
  readonly #api: string;
  readonly #owner: string;
  #latest: UploadState | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(file: string, api: string, token: string) {
    this.#file = file;
    this.#api = api;
    this.#owner = createHash('sha256').update(token).digest('hex').slice(0, 16);
    this.saved = this.#read();
  }

  #read(): UploadState | undefined {
    let text: string;
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const parsed = JSON.parse(text) as Partial<StateFile>;
      if (parsed.version !== 1 || parsed.api !== this.#api || parsed.owner !== this.#owner) return undefined;
      return parsed.upload;
    } catch {
      process.stderr.write(`photo-intake: ignoring ${this.#file}: not a state file this tool wrote.\n`);
      return undefined;
    }
  }

  update(state: UploadState): void {
    this.#latest = state;
    this.#timer ??= setTimeout(() => this.flush(), 250);
  }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#latest) return;
    const document: StateFile = { version: 1, api: this.#api, owner: this.#owner, upload: this.#latest };
    const temporary = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(document));
    renameSync(temporary, this.#file);
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
