import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver, {
  type S3rverContext,
  type S3rverEvent,
  type S3rverObject,
  type S3rverStore,
} from '@20minutes/s3rver';
import S3Error from '@20minutes/s3rver/lib/models/error.js';
import type { S3Event, S3EventRecord } from 'aws-lambda';
import { encodeEventKey } from '../../functions/shared/notify/s3-events.ts';

/** Region reported in event notifications; the emulator itself has none. */
const REGION = 'us-east-1';
/** Staging files live in the bucket directory (same filesystem, so `rename` is atomic); s3rver
 * lists only files ending in `._S3rver_object`, so they never show up as objects. */
const STAGING_PREFIX = '.staging-';
const SHA256_BASE64 = /^[A-Za-z0-9+/]{43}=$/;
const MD5_BASE64 = /^[A-Za-z0-9+/]{22}==$/;

export interface S3ServerOptions {
  /** Where buckets and objects are kept; reused across restarts. */
  directory: string;
  /** Loopback port; 0 (the default) picks a free one. */
  port?: number;
  /** Created (if missing) before the server accepts requests. */
  buckets: readonly string[];
  /** Origins allowed to GET/PUT from a browser (CORS on every bucket); none when absent. */
  corsAllowedOrigins?: readonly string[];
}

/** Receives one notification per created object. A returned promise is awaited before the write is
 * acknowledged, and its rejection fails the write with a retriable 500, so no object is stored
 * without its notification having been handled (at-least-once, as S3 to SQS). */
export type ObjectCreatedListener = (event: S3Event) => void | Promise<void>;

export interface S3Server {
  /** `http://127.0.0.1:<port>`; use path-style addressing and the credentials `S3RVER`/`S3RVER`. */
  endpoint: string;
  onObjectCreated(listener: ObjectCreatedListener): void;
  stop(): Promise<void>;
}

type CreateOperation = 'Put' | 'Post' | 'Copy' | 'CompleteMultipartUpload';

/** What the store wrappers and the event hook need to know about the request being served. */
interface RequestScope {
  operation: CreateOperation | undefined;
  headers: IncomingHttpHeaders;
  written: { size: number; md5: string } | undefined;
  deliveries: Promise<void>[];
  listV2: boolean;
}

/**
 * Starts an S3-compatible server (s3rver) on 127.0.0.1 with these changes, so that what the
 * pipeline relies on behaves as on S3:
 * - requests without a signature are refused (`403 AccessDenied`), as on a private bucket;
 * - a PUT whose bytes do not match its `x-amz-checksum-sha256` or `Content-MD5` is refused with
 *   `400 BadDigest` and stores nothing; signatures are still checked first;
 * - objects are written to a staging file, fsynced and renamed into place, so readers never see a
 *   partial object and a failed upload leaves any previous version intact;
 * - `ObjectCreated:*` notifications carry URL-encoded keys (`a b.jpg` -> `a+b.jpg`) and are
 *   delivered only once the object is readable;
 * - the SDK's bucket-level requests (ListObjectsV2, DeleteObjects) pass the signature check, and
 *   ListObjectsV2 answers in one page (see below).
 */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const cors = options.corsAllowedOrigins?.length ? [corsConfiguration(options.corsAllowedOrigins)] : [];
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    vhostBuckets: false,
    configureBuckets: options.buckets.map((name) => ({ name, configs: cors })),
  });

  const requests = new AsyncLocalStorage<RequestScope>();
  const listeners: ObjectCreatedListener[] = [];

  // Runs before s3rver's own middleware: it refuses anonymous requests and opens the scope in which
  // the store wrappers and the event hook below run.
  s3rver.middleware.unshift(async (ctx, next) => {
    if (ctx.method !== 'OPTIONS' && !isSigned(ctx)) {
      throw new S3Error('AccessDenied', 'Access Denied');
    }
    const scope: RequestScope = {
      operation: createOperation(ctx),
      headers: ctx.headers,
      written: undefined,
      deliveries: [],
      listV2: ctx.query['list-type'] === '2',
    };
    let undelivered = false;
    try {
      await requests.run(scope, next);
    } finally {
      for (const result of await Promise.allSettled(scope.deliveries)) {
        if (result.status === 'rejected') {
          undelivered = true;
          process.emitWarning(`ObjectCreated listener failed: ${String(result.reason)}`);
        }
      }
    }
    if (undelivered) {
      throw new S3Error('InternalError', 'We encountered an internal error. Please try again.');
    }
  });

  // The SDK addresses bucket-level operations (ListObjectsV2, DeleteObjects) path-style as `/<bucket>/`
  // and signs that path; s3rver rebuilds it as `/<bucket>` and refuses the signature. Its
  // virtual-host branch prefixes the bucket to the mount path, which yields the signed `/<bucket>/`.
  // Inserted just before the router (the last middleware), after s3rver's own vhost detection.
  s3rver.middleware.splice(s3rver.middleware.length - 1, 0, async (ctx, next) => {
    if (!ctx.state.vhost && /^\/[^/]+\/$/.test(ctx.path)) {
      ctx.state.vhost = true;
      ctx.mountPath = '/';
    }
    await next();
  });

  const store = s3rver.store;
  store.putObject = async (object) => {
    const scope = requests.getStore();
    const written = await putObjectAtomically(
      store,
      object,
      scope?.operation === 'Put' ? scope.headers : undefined,
    );
    if (scope) scope.written = written;
    return written;
  };
  const copyObject = store.copyObject.bind(store);
  store.copyObject = async (...args) => {
    const metadata = await copyObject(...args);
    const scope = requests.getStore();
    if (scope) {
      scope.written = { size: Number(metadata['content-length']), md5: JSON.parse(metadata.etag ?? '""') };
    }
    return metadata;
  };

  // s3rver's ListObjectsV2 continuation tokens are DES-encrypted, which OpenSSL 3 refuses (the
  // request fails with a 500 whenever a listing is truncated). V2 listings are therefore answered
  // in one page, however many keys match; the SDK's paginators do not depend on the page size.
  const listObjects = store.listObjects.bind(store);
  store.listObjects = (bucket, listOptions) =>
    listObjects(bucket, requests.getStore()?.listV2 ? { ...listOptions, maxKeys: Infinity } : listOptions);

  let sequence = 0n;
  s3rver.on('event', (raw: S3rverEvent) => {
    const scope = requests.getStore();
    for (const record of raw.Records) {
      if (!record.eventName.startsWith('ObjectCreated:')) continue;
      sequence += 1n;
      const event: S3Event = { Records: [toEventRecord(record, scope, sequence)] };
      for (const listener of listeners) {
        const delivery = deliver(listener, event);
        if (scope) {
          scope.deliveries.push(delivery);
        } else {
          delivery.catch((error: unknown) => process.emitWarning(`ObjectCreated listener failed: ${error}`));
        }
      }
    }
  });

  const { port } = await s3rver.run();
  await removeStagingLeftovers(store, options.buckets);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    onObjectCreated(listener) {
      listeners.push(listener);
    },
    async stop() {
      const server = s3rver.httpServer;
      const closed = s3rver.close();
      server?.closeIdleConnections();
      // A client holding a request open must not keep the process alive.
      const force = setTimeout(() => server?.closeAllConnections(), 2000);
      try {
        await closed;
      } finally {
        clearTimeout(force);
      }
    },
  };
}

async function deliver(listener: ObjectCreatedListener, event: S3Event): Promise<void> {
  await listener(event);
}

function isSigned(ctx: S3rverContext): boolean {
  return 'authorization' in ctx.headers || 'X-Amz-Algorithm' in ctx.query || 'Signature' in ctx.query;
}

/** The S3 operation, when the request is one that creates an object. */
function createOperation(ctx: S3rverContext): CreateOperation | undefined {
  const subresource = ['uploadId', 'partNumber', 'tagging', 'acl', 'uploads'].some((q) => q in ctx.query);
  if (ctx.method === 'PUT') {
    if (subresource) return undefined;
    return ctx.headers['x-amz-copy-source'] ? 'Copy' : 'Put';
  }
  if (ctx.method === 'POST') {
    if ('uploadId' in ctx.query) return 'CompleteMultipartUpload';
    return subresource || 'delete' in ctx.query ? undefined : 'Post';
  }
  return undefined;
}

/** Digests the client declared for a PUT, validated for form before any byte is read. */
function declaredDigests(headers: IncomingHttpHeaders | undefined): { sha256?: string; md5?: string } {
  if (!headers) return {};
  const sha256 = single(headers['x-amz-checksum-sha256']);
  const md5 = single(headers['content-md5']);
  if (sha256 !== undefined && !SHA256_BASE64.test(sha256)) {
    throw new S3Error('InvalidRequest', 'Value for x-amz-checksum-sha256 header is invalid.');
  }
  if (md5 !== undefined && !MD5_BASE64.test(md5)) {
    throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was not valid.');
  }
  return { ...(sha256 !== undefined && { sha256 }), ...(md5 !== undefined && { md5 }) };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Replaces s3rver's `putObject`, which writes straight to the final path (and, for a Buffer,
 * resolves before the bytes are written). Streams to a staging file while hashing, checks the
 * declared digests, then renames metadata and object into place.
 */
async function putObjectAtomically(
  store: S3rverStore,
  object: S3rverObject,
  headers: IncomingHttpHeaders | undefined,
): Promise<{ size: number; md5: string }> {
  const declared = declaredDigests(headers);
  const staging = join(store.getBucketPath(object.bucket), `${STAGING_PREFIX}${randomUUID()}`);
  const stagingFiles = [staging, `${staging}.md5`, `${staging}.json`] as const;
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  let size = 0;
  try {
    if (Buffer.isBuffer(object.content)) {
      sha256.update(object.content);
      md5.update(object.content);
      size = object.content.length;
      await writeFile(staging, object.content, { flush: true });
    } else {
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          sha256.update(chunk);
          md5.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(object.content, hashing, createWriteStream(staging, { flush: true }));
    }
    const md5Digest = md5.digest();
    if (declared.sha256 !== undefined && declared.sha256 !== sha256.digest('base64')) {
      throw new S3Error('BadDigest', 'The SHA256 you specified did not match the calculated checksum.');
    }
    if (declared.md5 !== undefined && declared.md5 !== md5Digest.toString('base64')) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    const md5Hex = md5Digest.toString('hex');
    // s3rver keeps the intrinsic values itself (size from the file, etag from `.md5`).
    const { 'content-length': _l, etag: _e, 'last-modified': _m, ...metadata } = object.metadata;
    await writeFile(stagingFiles[1], md5Hex, { flush: true });
    await writeFile(stagingFiles[2], JSON.stringify(metadata, null, 2), { flush: true });

    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    await placeFile(stagingFiles[1], store.getResourcePath(object.bucket, object.key, 'object.md5'));
    await placeFile(stagingFiles[2], store.getResourcePath(object.bucket, object.key, 'metadata.json'));
    await placeFile(staging, objectPath);
    return { size, md5: md5Hex };
  } finally {
    await Promise.all(stagingFiles.map((file) => rm(file, { force: true })));
  }
}

/** Renames into place; a concurrent delete may remove the (then empty) key directory, so retry once. */
async function placeFile(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(dirname(to), { recursive: true });
    await rename(from, to);
  }
}

/** The notification S3 sends, from s3rver's approximation of it. */
function toEventRecord(
  raw: S3rverEvent['Records'][number],
  scope: RequestScope | undefined,
  sequence: bigint,
): S3EventRecord {
  const bucket = raw.s3.bucket.name;
  const operation = scope?.operation ?? (raw.eventName.slice('ObjectCreated:'.length) as CreateOperation);
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: REGION,
    eventTime: raw.eventTime,
    eventName: `ObjectCreated:${operation}`,
    userIdentity: { principalId: 'AWS:S3RVER' },
    requestParameters: { sourceIPAddress: raw.requestParameters.sourceIPAddress },
    responseElements: {
      'x-amz-request-id': randomBytes(8).toString('hex').toUpperCase(),
      'x-amz-id-2': randomBytes(32).toString('base64'),
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'local-object-created',
      bucket: { name: bucket, ownerIdentity: { principalId: 'S3RVER' }, arn: `arn:aws:s3:::${bucket}` },
      object: {
        key: encodeEventKey(raw.s3.object.key),
        size: raw.s3.object.size ?? scope?.written?.size ?? 0,
        eTag: raw.s3.object.eTag ?? scope?.written?.md5 ?? '',
        // Hex, growing within a process, like S3's (which orders events for one key).
        sequencer: (BigInt(Date.now()) * 65536n + (sequence % 65536n)).toString(16).toUpperCase(),
      },
    },
  };
}

function corsConfiguration(origins: readonly string[]): string {
  const xmlText = (s: string) =>
    s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return [
    '<CORSConfiguration>',
    '<CORSRule>',
    ...origins.map((origin) => `<AllowedOrigin>${xmlText(origin)}</AllowedOrigin>`),
    '<AllowedMethod>GET</AllowedMethod>',
    '<AllowedMethod>HEAD</AllowedMethod>',
    '<AllowedMethod>PUT</AllowedMethod>',
    '<AllowedHeader>*</AllowedHeader>',
    '<ExposeHeader>ETag</ExposeHeader>',
    '<MaxAgeSeconds>3000</MaxAgeSeconds>',
    '</CORSRule>',
    '</CORSConfiguration>',
  ].join('');
}

/** A crash while an upload was written leaves its staging files behind; nobody will finish them. */
async function removeStagingLeftovers(
  store: { getBucketPath(bucket: string): string },
  buckets: readonly string[],
) {
  for (const bucket of buckets) {
    const dir = store.getBucketPath(bucket);
    const names = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(
      names
        .filter((name) => name.startsWith(STAGING_PREFIX))
        .map((name) => rm(join(dir, name), { force: true })),
    );
  }
}
