import type { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ObjectDeleteError, ObjectNotFoundError, ObjectTooLargeError } from './errors.ts';
import { encodeKeyPath } from './object-keys.ts';
import type { ObjectHead, ObjectStore, StoredObject } from './ports.ts';

export { ObjectDeleteError, ObjectNotFoundError, ObjectTooLargeError } from './errors.ts';

/** The most keys one DeleteObjects request takes. */
const DELETE_BATCH = 1000;

/** Objects in S3 (or an S3-compatible server) through the SDK. */
export class S3ObjectStore implements ObjectStore {
  readonly #client: S3Client;

  constructor(client: S3Client) {
    this.#client = client;
  }

  async get(bucket: string, key: string, maxBytes: number): Promise<StoredObject> {
    let output: GetObjectCommandOutput;
    try {
      output = await this.#client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      if (isNotFound(error)) throw new ObjectNotFoundError(bucket, key, { cause: error });
      throw error;
    }
    const body = output.Body as Readable | undefined;
    const declared = output.ContentLength;
    if (declared !== undefined && declared > maxBytes) {
      body?.destroy();
      throw new ObjectTooLargeError(bucket, key, declared, maxBytes);
    }
    const tooLarge = () => new ObjectTooLargeError(bucket, key, maxBytes + 1, maxBytes);
    const bytes = body ? await readAtMost(body, maxBytes, tooLarge) : Buffer.alloc(0);
    return {
      body: bytes,
      contentType: output.ContentType,
      size: bytes.length,
      etag: output.ETag === undefined ? undefined : output.ETag.replace(/"/g, ''),
    };
  }

  async head(bucket: string, key: string): Promise<ObjectHead | undefined> {
    try {
      const output = await this.#client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: output.ContentLength ?? 0, lastModified: output.LastModified ?? new Date(0) };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async put(
    bucket: string,
    key: string,
    body: Buffer,
    contentType: string,
    tag?: { key: string; value: string },
  ): Promise<void> {
    await this.#client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: contentType,
        ContentLength: body.length,
        ...(tag ? { Tagging: new URLSearchParams({ [tag.key]: tag.value }).toString() } : {}),
      }),
    );
  }

  async copyIfUnchanged(
    from: { bucket: string; key: string; etag: string },
    to: { bucket: string; key: string },
    contentType: string,
    tag?: { key: string; value: string },
  ): Promise<boolean> {
    try {
      await this.#client.send(
        new CopyObjectCommand({
          Bucket: to.bucket,
          Key: to.key,
          CopySource: `${from.bucket}/${encodeKeyPath(from.key)}`,
          CopySourceIfMatch: `"${from.etag}"`,
          MetadataDirective: 'REPLACE',
          ContentType: contentType,
          ...(tag
            ? {
                TaggingDirective: 'REPLACE',
                Tagging: new URLSearchParams({ [tag.key]: tag.value }).toString(),
              }
            : {}),
        }),
      );
      return true;
    } catch (error) {
      if (isNotFound(error) || isPreconditionFailed(error)) return false;
      throw error;
    }
  }

  async delete(bucket: string, keys: readonly string[]): Promise<void> {
    const unique = [...new Set(keys)];
    for (let start = 0; start < unique.length; start += DELETE_BATCH) {
      const chunk = unique.slice(start, start + DELETE_BATCH);
      const output = await this.#client.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      const failures = (output.Errors ?? []).map((e) => ({ key: e.Key ?? '', code: e.Code ?? 'Unknown' }));
      if (failures.length > 0) throw new ObjectDeleteError(bucket, failures);
    }
  }

  async deleteUnder(bucket: string, prefix: string): Promise<void> {
    const keys: string[] = [];
    for await (const key of this.list(bucket, prefix)) keys.push(key);
    await this.delete(bucket, keys);
  }

  async *list(bucket: string, prefix: string): AsyncIterable<string> {
    for await (const page of paginateListObjectsV2(
      { client: this.#client },
      { Bucket: bucket, Prefix: prefix },
    )) {
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) yield object.Key;
      }
    }
  }
}

/** Reads a stream into memory, failing as soon as it passes `maxBytes` (a lying Content-Length). */
async function readAtMost(body: Readable, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    total += buffer.length;
    if (total > maxBytes) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total);
}

function isPreconditionFailed(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return error.name === 'PreconditionFailed' || status === 412;
}

function isNotFound(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'NoSuchKey' || error.name === 'NotFound') return true;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 404 && error.name !== 'NoSuchBucket';
}
