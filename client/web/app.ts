/**
 * The web uploader: the client library in a page. Files come from the file input, a folder input or
 * a drop (files and folders); each gets a row whose `data-status` follows the file (`uploading` while
 * its bytes go up, then the contract's statuses) and whose `data-error` is the code of a failure or
 * rejection. DOM work is batched into one update per animation frame, so 1,000 files stay smooth.
 */
import { thumbHashToDataURL } from 'thumbhash';
import {
  type BatchView,
  createClient,
  type FileOutcome,
  type PhotoIntakeClient,
  type UploadState,
} from '../index.ts';

type RowStatus =
  | 'queued'
  | 'pending'
  | 'uploading'
  | 'uploaded'
  | 'processing'
  | 'ready'
  | 'failed'
  | 'rejected'
  | 'expired';

/** Statuses only move forward (a retry starts a row again on purpose). */
const RANK: Record<RowStatus, number> = {
  queued: 0,
  pending: 1,
  uploading: 2,
  uploaded: 3,
  processing: 4,
  ready: 5,
  failed: 5,
  rejected: 5,
  expired: 5,
};

const REASONS: Record<string, string> = {
  UnsupportedType: 'This kind of file is not accepted.',
  UnsupportedFormat: 'This file is not an image the service can read.',
  TooManyPixels: 'The image has too many pixels.',
  TooManyFrames: 'The animation has too many frames.',
  CorruptImage: 'The file is damaged or incomplete.',
  TooLarge: 'The file is too large.',
  InvalidName: 'The file name is not allowed.',
  ChecksumMismatch: 'The stored file does not match what was sent.',
  ProcessingTimeout: 'The image took too long to process.',
  ProcessingFailed: 'Processing kept failing; upload it again.',
  NetworkError: 'The connection failed. Retry when you are back online.',
  UploadUrlExpired: 'The upload link ran out. Retry to get a fresh one.',
  UploadDigestMismatch: 'The file changed while it was being uploaded.',
  UploadSignatureMismatch: 'The storage service refused the upload request.',
  UploadSizeMismatch: 'The file size changed while it was being uploaded.',
  UploadDenied: 'The storage service refused the upload.',
  Expired: 'Nothing was uploaded before the link ran out. Retry to send it.',
};

interface Row {
  index: number;
  file: File;
  status: RowStatus;
  bytesDone: number;
  imageId?: string;
  batchId?: string;
  error?: { code: string; message: string };
  placeholder?: string;
  thumbUrl?: string;
  job: Job;
  element?: HTMLLIElement;
  parts?: { img: HTMLImageElement; detail: HTMLElement; bar: HTMLElement; retry: HTMLButtonElement };
  /** What the element shows, to touch only what changed. */
  shown: {
    status?: string;
    error?: string;
    percent?: number;
    detail?: string;
    thumb?: string;
    placeholder?: string;
  };
}

interface Job {
  rows: Row[];
  state: UploadState | undefined;
}

const $ = <T extends Element>(selector: string) => document.querySelector(selector) as T;
const params = new URLSearchParams(location.search);
const apiInput = $<HTMLInputElement>('input[name=api]');
const tokenInput = $<HTMLInputElement>('input[name=token]');
apiInput.value = params.get('api') ?? location.origin;
tokenInput.value = params.get('token') ?? '';

const list = $<HTMLUListElement>('#files');
const overallBar = $<HTMLProgressElement>('#overall progress');
const overallText = $<HTMLElement>('#overall-text');
const rows: Row[] = [];
const dirty = new Set<Row>();
const byImage = new Map<string, Row>();
const waiting = new Set<string>();
let frame = 0;

function client(): PhotoIntakeClient {
  return createClient({ api: apiInput.value.trim() || location.origin, token: tokenInput.value.trim() });
}

function markDirty(row: Row): void {
  dirty.add(row);
  if (!frame) frame = requestAnimationFrame(render);
}

function setStatus(row: Row, status: RowStatus, force = false): void {
  if (!force && RANK[status] < RANK[row.status]) return;
  row.status = status;
  markDirty(row);
}

/** Adds files: one row each, then one upload run for them all. */
function addFiles(files: readonly File[]): void {
  if (files.length === 0) return;
  const job: Job = { rows: [], state: undefined };
  for (const file of files) {
    const row: Row = { index: rows.length, file, status: 'queued', bytesDone: 0, job, shown: {} };
    rows.push(row);
    job.rows.push(row);
    markDirty(row);
  }
  void runJob(job, job.rows);
}

async function runJob(job: Job, jobRows: Row[]): Promise<void> {
  const api = client();
  try {
    const result = await api.uploadFiles(
      jobRows.map((row) => row.file),
      {
        concurrency: 4,
        ...(job.state ? { resume: job.state } : {}),
        onStateChange: (state) => {
          job.state = state;
        },
        onBatch: (batch) => watch(api, batch.batchId),
        onFile: (outcome) => onOutcome(jobRows[outcome.index] as Row, outcome),
      },
    );
    for (const id of result.batchIds) watch(api, id);
  } catch (error) {
    // The run itself could not go on (API unreachable, bad token): every unfinished row says so.
    const info = errorInfo(error);
    for (const row of jobRows) {
      if (RANK[row.status] < RANK.uploaded) {
        row.error = info;
        setStatus(row, 'failed', true);
      }
    }
  }
}

function onOutcome(row: Row, outcome: Readonly<FileOutcome>): void {
  if (outcome.imageId && row.imageId !== outcome.imageId) {
    row.imageId = outcome.imageId;
    byImage.set(outcome.imageId, row);
  }
  if (outcome.batchId) row.batchId = outcome.batchId;
  if (outcome.bytesDone !== row.bytesDone) {
    row.bytesDone = outcome.bytesDone;
    markDirty(row);
  }
  if (outcome.error) row.error = outcome.error;
  // The library's `failed` means the bytes never went up: the server reads it `pending`, so the row
  // keeps the client's word for it until a retry.
  if (outcome.status === 'failed') setStatus(row, 'failed', true);
  else setStatus(row, outcome.status);
}

/** Polls one batch until complete, moving its rows along. */
function watch(api: PhotoIntakeClient, batchId: string): void {
  if (waiting.has(batchId)) return;
  waiting.add(batchId);
  api
    .waitForBatch(batchId, { maxIntervalMs: 2_000, onChange: (batch) => onBatch(batch) })
    .catch((error: unknown) => console.warn(`batch ${batchId}: ${errorInfo(error).message}`))
    .finally(() => waiting.delete(batchId));
}

function onBatch(batch: BatchView): void {
  for (const item of batch.items) {
    if (!('imageId' in item)) continue;
    const row = byImage.get(item.imageId);
    // `pending`: the client knows better (queued, uploading).
    if (!row || item.status === 'pending') continue;
    const gaveUp = row.status === 'failed' && isUploadFailure(row.error?.code ?? '');
    // The client gave up on the bytes and says why; the server reading `expired` adds nothing.
    if (gaveUp && item.status === 'expired') continue;
    if (item.placeholder && item.placeholder !== row.placeholder) {
      row.placeholder = item.placeholder;
      markDirty(row);
    }
    const thumb = item.variants
      ? (item.variants.find((variant) => variant.name === 'thumb') ??
        [...item.variants].sort((a, b) => a.width - b.width)[0])
      : undefined;
    if (thumb && !row.thumbUrl) {
      row.thumbUrl = thumb.url;
      markDirty(row);
    }
    if (item.error) row.error = item.error;
    else if (item.status === 'expired') row.error = { code: 'Expired', message: REASONS.Expired as string };
    else if (gaveUp) delete row.error;
    // Bytes the client thought lost may have landed after all: then the server's word wins.
    setStatus(row, item.status, gaveUp);
  }
}

/** Sends the row's file again: a fresh upload URL for the same image, or a new batch if it had none. */
function retry(row: Row): void {
  delete row.error;
  row.bytesDone = 0;
  setStatus(row, 'pending', true);
  const job = row.job;
  const single: Job = { rows: [row], state: job.state };
  void runJob(single, [row]).then(() => {
    if (single.state) job.state = { version: 1, files: { ...job.state?.files, ...single.state.files } };
  });
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') {
    return { code: error.code, message: error instanceof Error ? error.message : error.code };
  }
  return { code: 'Error', message: error instanceof Error ? error.message : String(error) };
}

// ---- rendering (one batch of DOM writes per frame) ----

const rowTemplate = document.createElement('template');
rowTemplate.innerHTML =
  '<li><div class="thumb"><img alt="" decoding="async"></div>' +
  '<div class="meta"><div class="name"></div><div class="detail"></div>' +
  '<div class="bar"><span></span></div></div>' +
  '<button type="button" class="retry" hidden>Retry</button></li>';

function createElement(row: Row): HTMLLIElement {
  const li = (rowTemplate.content.firstElementChild as HTMLLIElement).cloneNode(true) as HTMLLIElement;
  li.dataset.file = row.file.name;
  row.parts = {
    img: li.querySelector('img') as HTMLImageElement,
    detail: li.querySelector('.detail') as HTMLElement,
    bar: li.querySelector('.bar span') as HTMLElement,
    retry: li.querySelector('.retry') as HTMLButtonElement,
  };
  (li.querySelector('.name') as HTMLElement).textContent = relativePath(row.file);
  row.parts.retry.addEventListener('click', () => retry(row));
  return li;
}

/** Longest stretch of DOM work in one frame; what is left waits for the next frame. */
const FRAME_BUDGET_MS = 8;
let overallPaintedAt = 0;

function render(): void {
  frame = 0;
  const deadline = performance.now() + FRAME_BUDGET_MS;
  const fragment = document.createDocumentFragment();
  for (const row of dirty) {
    if (!row.element) {
      row.element = createElement(row);
      fragment.append(row.element);
    }
    paint(row, row.element);
    dirty.delete(row);
    if (performance.now() > deadline) break;
  }
  if (fragment.childNodes.length > 0) {
    // Past a few screens of rows, those out of view are not laid out or painted.
    if (rows.length > 100) list.classList.add('many');
    list.append(fragment);
  }
  if (dirty.size > 0) frame = requestAnimationFrame(render);
  const now = performance.now();
  if (dirty.size === 0 || now - overallPaintedAt > 250) {
    overallPaintedAt = now;
    paintOverall();
  }
}

function paint(row: Row, li: HTMLLIElement): void {
  const shown = row.shown;
  const parts = row.parts as NonNullable<Row['parts']>;
  if (shown.status !== row.status) {
    li.dataset.status = row.status;
    shown.status = row.status;
  }
  const failedOrRejected = row.status === 'failed' || row.status === 'rejected' || row.status === 'expired';
  const error = failedOrRejected && row.error ? row.error.code : '';
  if (shown.error !== error) {
    if (error) li.dataset.error = error;
    else delete li.dataset.error;
    parts.retry.hidden = !canRetry(row);
    shown.error = error;
  }
  const percent = row.file.size === 0 ? 100 : Math.floor((row.bytesDone / row.file.size) * 100);
  if (shown.percent !== percent) {
    parts.bar.style.width = `${percent}%`;
    shown.percent = percent;
  }
  const detail = describeRow(row, percent);
  if (shown.detail !== detail) {
    parts.detail.textContent = detail;
    shown.detail = detail;
  }
  const img = parts.img;
  if (row.placeholder && shown.placeholder !== row.placeholder) {
    try {
      const bytes = Uint8Array.from(atob(row.placeholder), (c) => c.charCodeAt(0));
      img.style.backgroundImage = `url(${thumbHashToDataURL(bytes)})`;
    } catch {
      // A placeholder that does not decode leaves the grey box.
    }
    shown.placeholder = row.placeholder;
  }
  if (row.thumbUrl && shown.thumb !== row.thumbUrl) {
    img.src = row.thumbUrl;
    shown.thumb = row.thumbUrl;
  }
}

const canRetry = (row: Row) =>
  row.status === 'expired' ||
  (row.status === 'failed' &&
    !!row.error &&
    REASONS[row.error.code] !== undefined &&
    isUploadFailure(row.error.code));

const isUploadFailure = (code: string) =>
  code === 'NetworkError' || code === 'Expired' || code.startsWith('Upload') || code.startsWith('Storage');

function describeRow(row: Row, percent: number): string {
  const size = formatBytes(row.file.size);
  switch (row.status) {
    case 'queued':
      return `${size} · waiting`;
    case 'pending':
      return `${size} · about to upload`;
    case 'uploading':
      return `${size} · uploading ${percent}%`;
    case 'uploaded':
      return `${size} · uploaded, waiting to be processed`;
    case 'processing':
      return `${size} · processing`;
    case 'ready':
      return `${size} · ready`;
    default: {
      const reason = row.error ? (REASONS[row.error.code] ?? row.error.message) : 'Failed.';
      return `${row.status === 'rejected' ? 'Rejected' : row.status === 'expired' ? 'Expired' : 'Failed'}: ${reason}`;
    }
  }
}

function paintOverall(): void {
  let total = 0;
  let done = 0;
  let final = 0;
  const counts = new Map<string, number>();
  for (const row of rows) {
    total += row.file.size;
    done += row.bytesDone;
    if (RANK[row.status] === 5) final++;
    counts.set(row.status, (counts.get(row.status) ?? 0) + 1);
  }
  overallBar.max = Math.max(1, total);
  overallBar.value = done;
  overallText.textContent =
    `${formatBytes(done)} of ${formatBytes(total)} sent · ${final} of ${rows.length} files final` +
    ([...counts].length ? ` (${[...counts].map(([status, count]) => `${count} ${status}`).join(', ')})` : '');
  document.body.dataset.pending = String(rows.length - final);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
}

const relativePath = (file: File) =>
  (file as File & { relativePath?: string }).relativePath || file.webkitRelativePath || file.name;

// ---- inputs: file picker, folder picker, drop zone ----

for (const input of document.querySelectorAll<HTMLInputElement>('input[type=file]')) {
  input.addEventListener('change', () => {
    addFiles([...(input.files ?? [])]);
    input.value = '';
  });
}

const zone = $<HTMLElement>('#drop');
zone.addEventListener('dragover', (event) => {
  event.preventDefault();
  zone.classList.add('over');
});
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (event) => {
  event.preventDefault();
  zone.classList.remove('over');
  const transfer = event.dataTransfer;
  if (!transfer) return;
  // Entries must be taken while the event lasts; folders are then read at leisure.
  const entries = [...transfer.items]
    .map((item) => (item.kind === 'file' ? item.webkitGetAsEntry() : null))
    .filter((entry): entry is FileSystemEntry => entry !== null);
  if (entries.length === 0) {
    addFiles([...transfer.files]);
    return;
  }
  const plainFiles = entries.every((entry) => entry.isFile) ? [...transfer.files] : undefined;
  if (plainFiles && plainFiles.length === entries.length) {
    addFiles(plainFiles);
    return;
  }
  void Promise.all(entries.map((entry) => filesOf(entry))).then((found) => addFiles(found.flat()));
});

async function filesOf(entry: FileSystemEntry): Promise<File[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) =>
      (entry as FileSystemFileEntry).file(resolve, reject),
    );
    Object.defineProperty(file, 'relativePath', { value: entry.fullPath.replace(/^\//, '') });
    return [file];
  }
  if (!entry.isDirectory) return [];
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const children: FileSystemEntry[] = [];
  for (;;) {
    // readEntries answers in pieces (100 at a time in Chromium) until it answers with none.
    const piece = await new Promise<FileSystemEntry[]>((resolve, reject) =>
      reader.readEntries(resolve, reject),
    );
    if (piece.length === 0) break;
    children.push(...piece);
  }
  const nested = await Promise.all(children.filter((child) => !child.name.startsWith('.')).map(filesOf));
  return nested.flat();
}
