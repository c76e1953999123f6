import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, createSecretKey, type KeyObject, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
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
import { allowedOrigin } from '../cors.ts';
import {
  checkChecksumForm,
  checksumVerifier,
  type DeclaredChecksum,
  declaredChecksums,
} from './s3-checksums.ts';
import { assertBucketName, assertInside, assertStorableKey } from './s3-paths.ts';

/** Region reported in event notifications; the emulator itself has none. */
const REGION = 'us-east-1';
/** Staging files live in the bucket directory (same filesystem, so `rename` is atomic); s3rver
 * lists only files ending in `._S3rver_object`, so they never show up as objects. */
const STAGING_PREFIX = '.staging-';
/** Exactly the names of staging files (a key's files always end in `._S3rver_<resource>`). */
const STAGING_FILE =
  /^\.staging-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(\.md5|\.json)?$/;
const MD5_BASE64 = /^[A-Za-z0-9+/]{22}==$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** What a browser on another origin may do with presigned URLs: upload, and read variants. */
const CORS_METHODS = ['GET', 'HEAD', 'PUT'];
const CORS_MAX_AGE_SECONDS = 3000;

export interface S3ServerOptions {
  /** Where buckets and objects are kept; reused across restarts. */
  directory: string;
  /** Loopback port; 0 (the default) picks a free one. */
  port?: number;
  /** Created (if missing) before the server accepts requests. */
  buckets: readonly string[];
  /** Origins allowed to GET/HEAD/PUT from a browser (`*`: any); none when absent. */
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
  /** `x-amz-checksum-*` values from the query and the headers, as they arrived. */
  checksums: DeclaredChecksum[];
  written: { size: number; md5: string } | undefined;
  deliveries: Promise<void>[];
  listV2: boolean;
}

/**
 * s3rver derives the SigV4 signing key (four HMACs) for every request it checks, and hands it to
 * `createHmac` as bytes, which Node 24 checks slowly (functions/shared/sha256.ts). The key depends
 * only on the secret, the day, the region and the service: it is derived once and kept as a
 * `KeyObject`. Signatures are checked exactly as before.
 */
function cacheSigningKeys(): void {
  type Derive = (secret: string, date: string, region: string, service: string) => Buffer;
  const v4 = createRequire(import.meta.url)('@20minutes/s3rver/lib/signature/v4.js') as {
    getSigningKey: Derive;
    keysCached?: true;
  };
  if (v4.keysCached) return;
  const derive = v4.getSigningKey;
  const keys = new Map<string, KeyObject>();
  const cached = (secret: string, date: string, region: string, service: string): KeyObject => {
    const id = [secret, date, region, service].join('\n');
    let key = keys.get(id);
    if (!key) {
      key = createSecretKey(derive(secret, date, region, service));
      if (keys.size >= 64) keys.clear();
      keys.set(id, key);
    }
    return key;
  };
  // s3rver passes the key only to `createHmac`, which takes a KeyObject as it takes bytes.
  v4.getSigningKey = cached as unknown as Derive;
  v4.keysCached = true;
}

/**
 * Starts an S3-compatible server (s3rver) on 127.0.0.1 with these changes, so that what the
 * pipeline relies on behaves as on S3:
 * - requests without a signature are refused (`403 AccessDenied`), as on a private bucket;
 * - a PUT (or part upload) whose bytes do not match any checksum it signs in its query or sends as
 *   a header (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`, `-sha1`, `-sha256`, `Content-MD5`,
 *   a hex `x-amz-content-sha256`) is refused with `400 BadDigest` and stores nothing; signatures
 *   are still checked first;
 * - a key or bucket that would leave the bucket's folder (`..`, NUL, ...) is refused with a 400
 *   (see `s3-paths.ts`), on every path: put, get, head, delete, copy, list, tagging, multipart;
 * - CORS is answered here for every bucket (preflights, and headers on every response, errors
 *   included) from `corsAllowedOrigins`;
 * - objects are written to a staging file and renamed into place, so readers never see a
 *   partial object and a failed upload leaves any previous version intact;
 * - `ObjectCreated:*` notifications carry URL-encoded keys (`a b.jpg` -> `a+b.jpg`) and are
 *   delivered only once the object is readable;
 * - the SDK's bucket-level requests (ListObjectsV2, DeleteObjects) pass the signature check, and
 *   ListObjectsV2 answers in one page (see below).
 */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  cacheSigningKeys();
  const corsOrigins = options.corsAllowedOrigins ?? [];
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    vhostBuckets: false,
    configureBuckets: options.buckets.map((name) => ({ name })),
  });

  const requests = new AsyncLocalStorage<RequestScope>();
  const listeners: ObjectCreatedListener[] = [];

  // Runs before s3rver's own middleware: it refuses anonymous requests and opens the scope in which
  // the store wrappers and the event hook below run.
  s3rver.middleware.unshift(async (ctx, next) => {
    if (answerCors(ctx, corsOrigins)) return;
    if (!isSigned(ctx)) {
      throw new S3Error('AccessDenied', 'Access Denied');
    }
    checkRequestForm(ctx);
    const scope: RequestScope = {
      operation: createOperation(ctx),
      headers: ctx.headers,
      checksums: declaredChecksums(ctx.query, ctx.headers),
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
  // An object is three files (bytes, `.md5` that is its ETag, metadata) that no rename moves together:
  // every read, write, copy and delete of one key holds its lock, so none sees half of another.
  const keys = new KeyedLock();
  const lockKey = (bucket: string, key: string) => `${bucket}/${key}`;
  const getObject = store.getObject.bind(store);
  store.getObject = (bucket, key, options) =>
    keys.run(lockKey(bucket, key), () => getObject(bucket, key, options));
  const getMetadata = store.getMetadata.bind(store);
  store.getMetadata = (bucket, key) => keys.run(lockKey(bucket, key), () => getMetadata(bucket, key));
  const deleteObject = store.deleteObject.bind(store);
  store.deleteObject = (bucket, key) => keys.run(lockKey(bucket, key), () => deleteObject(bucket, key));
  // Every path the store touches comes from these two: keys and buckets are data, and never lead
  // out of the bucket's folder.
  const getBucketPath = store.getBucketPath.bind(store);
  store.getBucketPath = (bucket) => {
    assertBucketName(bucket);
    return getBucketPath(bucket);
  };
  const getResourcePath = store.getResourcePath.bind(store);
  store.getResourcePath = (bucket, key, resource) => {
    assertBucketName(bucket);
    if (key !== undefined) assertStorableKey(key);
    const resourcePath = getResourcePath(bucket, key, resource);
    assertInside(getBucketPath(bucket), resourcePath);
    return resourcePath;
  };

  store.putObject = async (object) => {
    const scope = requests.getStore();
    const written = await putObjectAtomically(
      store,
      object,
      scope?.operation === 'Put' ? scope : undefined,
      (place) => keys.run(lockKey(object.bucket, object.key), place),
    );
    if (scope) scope.written = written;
    return written;
  };
  const putPart = store.putPart.bind(store);
  store.putPart = async (bucket, uploadId, partNumber, content) => {
    const declared = requests.getStore()?.checksums ?? [];
    if (declared.length === 0 || Buffer.isBuffer(content))
      return putPart(bucket, uploadId, partNumber, content);
    checkChecksumForm(declared);
    const verifier = checksumVerifier(declared);
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        verifier.update(chunk);
        callback(null, chunk);
      },
    });
    content.on('error', (error) => hashing.destroy(error));
    const written = await putPart(bucket, uploadId, partNumber, content.pipe(hashing));
    try {
      await verifier.verify();
    } catch (error) {
      const partPath = join(getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
      await Promise.all([rm(partPath, { force: true }), rm(`${partPath}.md5`, { force: true })]);
      throw error;
    }
    return written;
  };
  const copyObject = store.copyObject.bind(store);
  store.copyObject = async (...args) => {
    // s3rver ignores `x-amz-copy-source-if-match`; S3 refuses the copy when the source's ETag differs.
    const ifMatch = single(requests.getStore()?.headers['x-amz-copy-source-if-match']);
    const [srcBucket, srcKey] = args;
    // The source's lock is held from the check to the end of the copy (the destination's own
    // metadata is then read without it: s3rver's copyObject reads it through `this`).
    const metadata = await keys.run(lockKey(srcBucket, srcKey), async () => {
      if (ifMatch !== undefined) {
        const source = await getMetadata(srcBucket, srcKey).catch(() => undefined);
        if (!etagMatches(ifMatch, source?.etag)) throw preconditionFailed();
      }
      return copyObject(...args);
    });
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
  // CORS is answered by the first middleware; a bucket configuration an earlier version stored
  // would make s3rver add its own headers.
  await Promise.all(options.buckets.map((bucket) => store.deleteSubresource(bucket, undefined, 'cors')));
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

/**
 * Answers a CORS preflight (true when it did), and adds CORS headers to any other response of an
 * allowed origin. Set before anything else runs, so error responses (which keep `access-control-*`
 * and `vary` headers) carry them too, and a browser can read S3's error XML.
 */
function answerCors(ctx: S3rverContext, allowed: readonly string[]): boolean {
  const origin = ctx.get('origin') || undefined;
  const allowOrigin = allowedOrigin(origin, allowed);
  if (ctx.method !== 'OPTIONS') {
    if (origin !== undefined && allowOrigin !== undefined) {
      ctx.set('Access-Control-Allow-Origin', allowOrigin);
      ctx.set('Access-Control-Expose-Headers', 'ETag');
      ctx.set('Vary', 'Origin');
    }
    return false;
  }
  const method = ctx.get('access-control-request-method');
  if (origin === undefined || !method) {
    throw new S3Error('CORSResponse', 'Insufficient information. Origin request header needed.');
  }
  if (allowOrigin === undefined || !CORS_METHODS.includes(method.toUpperCase())) {
    throw new S3Error(
      'CORSResponse',
      "This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
    );
  }
  const requested = ctx
    .get('access-control-request-headers')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  ctx.set('Access-Control-Allow-Origin', allowOrigin);
  ctx.set('Access-Control-Allow-Methods', CORS_METHODS.join(', '));
  if (requested.length > 0) ctx.set('Access-Control-Allow-Headers', requested.join(', '));
  ctx.set('Access-Control-Expose-Headers', 'ETag');
  ctx.set('Access-Control-Max-Age', String(CORS_MAX_AGE_SECONDS));
  ctx.set('Vary', 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method');
  ctx.status = 200;
  ctx.body = '';
  return true;
}

/**
 * Refuses, with S3's 4xx, request parameters that s3rver would otherwise turn into file paths or
 * fail on with a 500: an upload id is 32 hex digits, a part number 1-10000, and a copy source
 * must decode. (S3 decodes a copy source whole; s3rver applies `decodeURI`, which leaves `%2B`,
 * `%2F` and the like encoded, so locally a copy source must not hold those characters. The
 * pipeline copies only upload keys, which are made of ids.)
 */
function checkRequestForm(ctx: S3rverContext): void {
  const uploadId = ctx.query.uploadId;
  if (uploadId !== undefined && (typeof uploadId !== 'string' || !UPLOAD_ID.test(uploadId))) {
    throw new S3Error(
      'NoSuchUpload',
      'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    );
  }
  const partNumber = ctx.query.partNumber;
  if (
    partNumber !== undefined &&
    (typeof partNumber !== 'string' || !/^[1-9]\d{0,4}$/.test(partNumber) || Number(partNumber) > 10_000)
  ) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.', {
      ArgumentName: 'partNumber',
    });
  }
  const copySource = ctx.headers['x-amz-copy-source'];
  if (copySource !== undefined) {
    try {
      decodeURI(single(copySource) ?? '');
    } catch {
      throw new S3Error('InvalidArgument', 'Invalid copy source encoding.', {
        ArgumentName: 'x-amz-copy-source',
      });
    }
  }
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

/**
 * Digests the client declared for a PUT, validated for form before any byte is read (after the
 * signature check, as S3 does).
 */
function declaredDigests(scope: RequestScope | undefined): {
  checksums: DeclaredChecksum[];
  md5?: string;
  contentSha256?: string;
} {
  if (!scope) return { checksums: [] };
  const { headers, checksums } = scope;
  checkChecksumForm(checksums);
  const md5 = single(headers['content-md5']);
  if (md5 !== undefined && !MD5_BASE64.test(md5)) {
    throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was not valid.');
  }
  const payload = single(headers['x-amz-content-sha256']);
  // s3rver stores an aws-chunked body with trailing checksums as it arrives, framing included.
  if (headers['x-amz-trailer'] !== undefined || payload?.endsWith('-TRAILER')) {
    throw new S3Error(
      'InvalidRequest',
      'The local storage endpoint does not support trailing checksums; send the checksum as a header (SDK: requestChecksumCalculation WHEN_REQUIRED).',
    );
  }
  return {
    checksums,
    ...(md5 !== undefined && { md5 }),
    ...(payload !== undefined && SHA256_HEX.test(payload) && { contentSha256: payload }),
  };
}

const preconditionFailed = () =>
  new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
    Condition: 'x-amz-copy-source-If-Match',
  });

/** Whether an If-Match value (`*`, or ETags, quoted or not) names this ETag. */
function etagMatches(ifMatch: string, etag: string | undefined): boolean {
  const bare = (tag: string) => tag.trim().replace(/^"|"$/g, '');
  return (
    ifMatch.trim() === '*' || ifMatch.split(',').some((tag) => etag !== undefined && bare(tag) === bare(etag))
  );
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Replaces s3rver's `putObject`, which writes straight to the final path (and, for a Buffer,
 * resolves before the bytes are written). Streams to a staging file while hashing, checks the
 * declared digests, then renames metadata and object into place. The renames come after the writes
 * complete, so a killed process leaves whole objects or none; nothing is fsynced (only a power cut
 * could lose the last objects, as with the queue's SQLite), which kept a thread of the pool, shared
 * with sharp, waiting on the disk for every file.
 */
async function putObjectAtomically(
  store: S3rverStore,
  object: S3rverObject,
  scope: RequestScope | undefined,
  exclusively: (place: () => Promise<void>) => Promise<void>,
): Promise<{ size: number; md5: string }> {
  const declared = declaredDigests(scope);
  const verifier = checksumVerifier(declared.checksums);
  const staging = join(store.getBucketPath(object.bucket), `${STAGING_PREFIX}${randomUUID()}`);
  const stagingFiles = [staging, `${staging}.md5`, `${staging}.json`] as const;
  // Only a declared `x-amz-content-sha256` needs the SHA-256 of the whole body; S3 keeps the MD5 as the ETag.
  const sha256 = declared.contentSha256 === undefined ? undefined : createHash('sha256');
  const md5 = createHash('md5');
  let size = 0;
  let placed = false;
  try {
    if (Buffer.isBuffer(object.content)) {
      sha256?.update(object.content);
      md5.update(object.content);
      verifier.update(object.content);
      size = object.content.length;
      await writeFile(staging, object.content);
    } else {
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          sha256?.update(chunk);
          md5.update(chunk);
          verifier.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(object.content, hashing, createWriteStream(staging));
    }
    const md5Digest = md5.digest();
    await verifier.verify();
    if (declared.md5 !== undefined && declared.md5 !== md5Digest.toString('base64')) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    if (sha256 && declared.contentSha256 !== sha256.digest('hex')) {
      throw Object.assign(
        new S3Error(
          'XAmzContentSHA256Mismatch',
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ),
        { status: 400 },
      );
    }
    const md5Hex = md5Digest.toString('hex');
    // s3rver keeps the intrinsic values itself (size from the file, etag from `.md5`).
    const { 'content-length': _l, etag: _e, 'last-modified': _m, ...metadata } = object.metadata;
    await writeFile(stagingFiles[1], md5Hex);
    await writeFile(stagingFiles[2], JSON.stringify(metadata, null, 2));

    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    await exclusively(async () => {
      await placeFile(stagingFiles[1], store.getResourcePath(object.bucket, object.key, 'object.md5'));
      await placeFile(stagingFiles[2], store.getResourcePath(object.bucket, object.key, 'metadata.json'));
      await placeFile(staging, objectPath);
    });
    placed = true;
    return { size, md5: md5Hex };
  } finally {
    // Placed files were renamed away; anything else staged is removed.
    if (!placed) await Promise.all(stagingFiles.map((file) => rm(file, { force: true })));
  }
}

/**
 * One holder at a time per key; holders of other keys never wait. Reentrant: work already holding a
 * key (s3rver's `getObject` reads its metadata through `getMetadata`) goes straight on.
 */
class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();
  readonly #held = new AsyncLocalStorage<ReadonlySet<string>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const held = this.#held.getStore();
    if (held?.has(key)) return work();
    const inside = () => this.#held.run(new Set([...(held ?? []), key]), work);
    const before = this.#tails.get(key) ?? Promise.resolve();
    const result = before.then(inside, inside);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/**
 * Renames into place. The key's directory is made only when the rename finds it missing: a new key,
 * or a concurrent delete that removed the (then empty) directory.
 */
async function placeFile(from: string, to: string): Promise<void> {
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

/** A crash while an upload was written leaves its staging files behind; nobody will finish them. */
async function removeStagingLeftovers(
  store: { getBucketPath(bucket: string): string },
  buckets: readonly string[],
) {
  for (const bucket of buckets) {
    const dir = store.getBucketPath(bucket);
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    await Promise.all(
      entries
        .filter((entry) => entry.isFile() && STAGING_FILE.test(entry.name))
        .map((entry) => rm(join(dir, entry.name), { force: true })),
    );
  }
}
