import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { SharpOptions } from 'sharp';
import { ImageError } from './errors.ts';

/** Pixels ready for sharp: the bytes and the options that describe them. */
export interface DecodedSource {
  input: Buffer;
  options: SharpOptions;
}

type WorkerAnswer =
  | { ok: true; width: number; height: number; data: Uint8ClampedArray }
  | { ok: false; error: 'container' | 'empty' | 'decode'; width?: number; height?: number }
  | { ok: false; error: 'pixels'; width: number; height: number };

// The decoder runs in a worker thread: libheif (WebAssembly) decodes synchronously, about 0.1 s per
// megapixel, which would block the event loop (and the local stack's API) and could not be cut
// short. In a worker it runs beside the event loop, and a decode past its deadline is stopped by
// terminating the worker. CommonJS source, evaluated in the worker; heic-decode is loaded by path.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const heicDecode = require(workerData.modulePath);
parentPort.on('message', async ({ buffer, maxInputPixels }) => {
  let images;
  try {
    images = await heicDecode.all({ buffer });
  } catch {
    parentPort.postMessage({ ok: false, error: 'container' });
    return;
  }
  try {
    const primary = images[0];
    if (!primary) return parentPort.postMessage({ ok: false, error: 'empty' });
    const { width, height } = primary;
    if (width * height > maxInputPixels) return parentPort.postMessage({ ok: false, error: 'pixels', width, height });
    let decoded;
    try {
      decoded = await primary.decode();
    } catch {
      return parentPort.postMessage({ ok: false, error: 'decode' });
    }
    parentPort.postMessage({ ok: true, width: decoded.width, height: decoded.height, data: decoded.data }, [decoded.data.buffer]);
  } finally {
    images.dispose();
  }
});
`;

let worker: Worker | undefined;
/** Decodes run one at a time: the worker holds one libheif instance. */
let queue: Promise<unknown> = Promise.resolve();

function decoderWorker(): Worker {
  if (!worker) {
    const modulePath = createRequire(import.meta.url).resolve('heic-decode');
    worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { modulePath } });
    // An idle decoder never keeps the process alive.
    worker.unref();
    worker.once('exit', () => {
      worker = undefined;
    });
  }
  return worker;
}

function decodeInWorker(input: Buffer, maxInputPixels: number, deadline: number): Promise<WorkerAnswer> {
  return new Promise<WorkerAnswer>((resolve, reject) => {
    const decoder = decoderWorker();
    const left = deadline - Date.now();
    const timer = setTimeout(
      () => {
        cleanup();
        // Stop the decode where it is; the next image starts a fresh worker.
        void decoder.terminate();
        worker = undefined;
        reject(new ImageError('ProcessingTimeout', 'Decoding the HEIF image took too long.'));
      },
      Math.max(0, left),
    );
    const onMessage = (answer: WorkerAnswer) => {
      cleanup();
      resolve(answer);
    };
    const onError = (error: Error) => {
      cleanup();
      worker = undefined;
      reject(error);
    };
    const cleanup = () => {
      clearTimeout(timer);
      decoder.off('message', onMessage);
      decoder.off('error', onError);
    };
    decoder.on('message', onMessage);
    decoder.on('error', onError);
    decoder.postMessage({ buffer: input, maxInputPixels });
  });
}

/**
 * Decodes the primary image of an HEVC-coded HEIF (iPhone HEIC, Android HEIF) with libheif compiled
 * to WebAssembly, because sharp's prebuilt libvips carries no HEVC decoder. libheif applies the
 * container's `irot`/`imir`/`clap` transforms, so the pixels come out upright; the EXIF orientation
 * of a HEIF is informative only and must not be applied again.
 *
 * Returns raw RGBA in the file's colour space (the caller applies the profile). The dimensions are
 * checked against `maxInputPixels` from the container before any pixel is decoded; a decode still
 * running at `deadline` (epoch ms) is stopped and ends `ProcessingTimeout`.
 */
export async function decodeHevcHeif(
  input: Buffer,
  maxInputPixels: number,
  deadline: number,
): Promise<DecodedSource> {
  const turn = queue.then(() => decodeInWorker(input, maxInputPixels, deadline));
  queue = turn.catch(() => undefined);
  const answer = await turn;
  if (!answer.ok) {
    switch (answer.error) {
      case 'pixels':
        throw new ImageError(
          'TooManyPixels',
          `The image is ${answer.width}x${answer.height} pixels, over the limit of ${maxInputPixels}.`,
        );
      case 'empty':
        throw new ImageError('CorruptImage', 'The HEIF file holds no image.');
      case 'container':
        throw new ImageError('CorruptImage', 'The HEIF container could not be read.');
      default:
        throw new ImageError('CorruptImage', 'The HEIF image could not be decoded.');
    }
  }
  const { width, height, data } = answer;
  if (data.byteLength !== width * height * 4) {
    throw new ImageError('CorruptImage', 'The HEIF decoder returned an unexpected pixel buffer.');
  }
  // The pixels are in the file's colour space: the caller converts them with the profile from the
  // header once they are shrunk.
  return {
    input: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    options: { raw: { width, height, channels: 4 } },
  };
}
