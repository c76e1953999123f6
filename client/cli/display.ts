import cliProgress from 'cli-progress';
import type { UploadProgress } from '../upload.ts';

/** What the CLI shows while it works: bars on a terminal, plain lines otherwise, nothing with --json. */
export interface Display {
  progress(progress: UploadProgress): void;
  /** A file finished uploading (or needed no upload). */
  file(report: { path: string; status: string; error?: { code: string } }, bytes: number): void;
  /** Waiting for `count` files to be processed. */
  waiting(count: number): void;
  /** A file reached its final status while waiting. */
  final(report: { path: string; status: string; imageId?: string; error?: { code: string } }): void;
  summary(text: string): void;
  stop(): void;
}

const line = (report: { path: string; status: string; imageId?: string; error?: { code: string } }) =>
  `${report.status.padEnd(9)} ${report.path}${report.error ? ` (${report.error.code})` : ''}${
    report.imageId && report.status === 'ready' ? ` ${report.imageId}` : ''
  }`;

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export function openDisplay(options: { json: boolean; total: number; wait: boolean }): Display {
  if (options.json) return quiet();
  if (process.stderr.isTTY) return bars(options.total, options.wait);
  return plain();
}

function quiet(): Display {
  const nothing = () => {};
  return {
    progress: nothing,
    file: nothing,
    waiting: nothing,
    final: nothing,
    summary: nothing,
    stop: nothing,
  };
}

/** Plain lines: one per file as it finishes each stage, and a summary. */
function plain(): Display {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  let lastTenth = -1;
  return {
    progress(progress) {
      // A line at each tenth of the bytes, so a log shows that it moves.
      const tenth =
        progress.bytesTotal === 0 ? 10 : Math.floor((progress.bytesDone / progress.bytesTotal) * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        out(
          `progress  ${mib(progress.bytesDone)}/${mib(progress.bytesTotal)} MiB, ${progress.filesDone}/${progress.filesTotal} files`,
        );
      }
    },
    file: (report) => out(line(report)),
    waiting: (count) => out(`waiting   for ${count} file(s) to be processed`),
    final: (report) => out(line(report)),
    summary: (text) => out(`done      ${text}`),
    stop() {},
  };
}

/** A terminal: one bar for the bytes going up, one for the files being processed (with --wait). */
function bars(total: number, wait: boolean): Display {
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      format: '{label} |{bar}| {percentage}% | {detail}',
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const upload = multi.create(1, 0, { label: 'upload ', detail: 'starting' });
  let processing: cliProgress.SingleBar | undefined;
  let finals = 0;
  return {
    progress(progress) {
      upload.setTotal(Math.max(1, progress.bytesTotal));
      upload.update(progress.bytesDone, {
        detail: `${mib(progress.bytesDone)}/${mib(progress.bytesTotal)} MiB, ${progress.filesDone}/${progress.filesTotal} files`,
      });
    },
    file(report) {
      if (report.status === 'failed' || report.status === 'rejected') multi.log(`${line(report)}\n`);
    },
    waiting(count) {
      if (!wait) return;
      processing = multi.create(Math.max(1, count), 0, { label: 'process', detail: `0/${count} final` });
      if (count === 0) processing.update(1, { detail: 'nothing to wait for' });
    },
    final(report) {
      finals++;
      processing?.update(finals, { detail: `${finals}/${processing.getTotal()} final` });
      if (report.status !== 'ready') multi.log(`${line(report)}\n`);
    },
    summary(text) {
      multi.stop();
      process.stdout.write(`done: ${text} (${total} file(s))\n`);
    },
    stop: () => multi.stop(),
  };
}
