import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { declaredType } from './corpus.ts';
import { assertConforms } from './openapi-conformance.ts';

export interface UploadItem {
  index: number;
  imageId?: string;
  status: string;
  upload?: { method: string; url: string; headers: Record<string, string> };
  error?: { code: string; message: string };
  duplicateOf?: string;
}

export interface CreatedBatch {
  batchId: string;
  expiresAt: string;
  items: UploadItem[];
}

export interface LocalFile {
  name: string;
  type: string;
  size: number;
  sha256: string;
  bytes: Buffer;
}

export async function loadFile(file: string, options: { type?: string } = {}): Promise<LocalFile> {
  const bytes = await readFile(file);
  return {
    name: path.basename(file),
    type: options.type ?? declaredType(file),
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    bytes,
  };
}

/** A thin client for the contract's routes, as an outside tool would write it. */
export function apiClient(baseUrl: string, token: string) {
  const auth = { authorization: `Bearer ${token}` };
  return {
    async request(
      method: string,
      route: string,
      init: { body?: unknown; headers?: Record<string, string> } = {},
    ) {
      const response = await fetch(`${baseUrl}${route}`, {
        method,
        headers: {
          ...auth,
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
      const text = await response.text();
      // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field by the tests.
      const body: any = text ? JSON.parse(text) : undefined;
      // Every answer the tests receive must be one the OpenAPI document describes.
      assertConforms(method, route, response.status, body);
      return { status: response.status, headers: response.headers, body };
    },
    async createBatch(files: Array<Partial<LocalFile>>): Promise<CreatedBatch> {
      const response = await this.request('POST', '/v1/uploads', {
        body: { files: files.map(({ name, type, size, sha256 }) => ({ name, type, size, sha256 })) },
      });
      if (response.status !== 201)
        throw new Error(`POST /v1/uploads: ${response.status} ${JSON.stringify(response.body)}`);
      return response.body as CreatedBatch;
    },
    /** Polls the batch until `complete`, or throws after `timeoutMs`. */
    async waitForBatch(batchId: string, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const response = await this.request('GET', `/v1/batches/${batchId}?limit=500`);
        if (response.status !== 200)
          throw new Error(`GET batch: ${response.status} ${JSON.stringify(response.body)}`);
        if (response.body.complete) return response.body;
        if (Date.now() > deadline)
          throw new Error(`batch not complete in time: ${JSON.stringify(response.body.counts)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
  };
}

/** Uploads with exactly the method, URL and headers the API returned. */
export async function putUpload(item: UploadItem, bytes: Buffer): Promise<Response> {
  if (!item.upload) throw new Error(`item ${item.index} has no upload`);
  return fetch(item.upload.url, { method: item.upload.method, headers: item.upload.headers, body: bytes });
}
