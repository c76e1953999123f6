/**
 * The parts of the untyped emulator packages that the local stack uses. Neither package ships type
 * declarations; these describe only what `local/emulators/` calls, as read from their sources.
 */

declare module '@20minutes/s3rver' {
  import type { EventEmitter } from 'node:events';
  import type { IncomingHttpHeaders, Server } from 'node:http';
  import type { Readable } from 'node:stream';

  /** The slice of a Koa context the emulator's middleware reads. */
  export interface S3rverContext {
    method: string;
    path: string;
    headers: IncomingHttpHeaders;
    query: Record<string, string | string[] | undefined>;
    /** `vhost`: the bucket came from the Host header (set by s3rver's vhost middleware). */
    state: { vhost?: boolean };
    /** Prefix of the signed path; s3rver prepends it (appends it after the bucket for vhost). */
    mountPath: string | undefined;
    /** A request header's value, `''` when absent. */
    get(name: string): string;
    /** Sets a response header. */
    set(name: string, value: string): void;
    status: number;
    body: unknown;
  }

  export type S3rverMiddleware = (ctx: S3rverContext, next: () => Promise<void>) => Promise<void>;

  /** An object as s3rver's controllers hand it to the store. */
  export interface S3rverObject {
    bucket: string;
    key: string;
    /** The request (or a decoded aws-chunked stream); a Buffer for form POSTs. */
    content: Readable | Buffer;
    metadata: Record<string, string>;
  }

  export interface S3rverStore {
    rootDirectory: string;
    getBucketPath(bucket: string): string;
    getResourcePath(bucket: string, key: string | undefined, resource: string): string;
    putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
    /** Writes a part to `<bucket>/._S3rver_uploads/<uploadId>/<partNumber>` (and `.md5`). */
    putPart(
      bucket: string,
      uploadId: string,
      partNumber: string,
      content: Readable | Buffer,
    ): Promise<{ size: number; md5: string }>;
    deleteSubresource(bucket: string, key: string | undefined, resourceType: string): Promise<void>;
    listObjects(bucket: string, options: { maxKeys?: number } & Record<string, unknown>): Promise<unknown>;
    getObject(bucket: string, key: string, options?: unknown): Promise<unknown>;
    /** The object's stored metadata (`etag` quoted); rejects when there is no such object. */
    getMetadata(bucket: string, key: string): Promise<Record<string, string>>;
    deleteObject(bucket: string, key: string): Promise<void>;
    copyObject(
      srcBucket: string,
      srcKey: string,
      destBucket: string,
      destKey: string,
      replacementMetadata: Record<string, string> | null,
    ): Promise<Record<string, string>>;
  }

  export interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    directory?: string;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    configureBuckets?: Array<{ name: string; configs?: Array<string | Buffer> }>;
  }

  /** The S3 event notification s3rver emits as `'event'` after a write. */
  export interface S3rverEvent {
    Records: Array<{
      eventName: string;
      eventTime: string;
      requestParameters: { sourceIPAddress: string };
      s3: { bucket: { name: string }; object: { key: string; size?: number; eTag?: string } };
    }>;
  }

  export default class S3rver extends EventEmitter {
    constructor(options: S3rverOptions);
    /** Koa's middleware stack, composed when the server starts listening. */
    middleware: S3rverMiddleware[];
    store: S3rverStore;
    httpServer: Server | undefined;
    run(): Promise<{ address: string; port: number }>;
    close(): Promise<void>;
  }
}

declare module '@20minutes/s3rver/lib/models/error.js' {
  /** An S3 error; s3rver renders it as S3's XML error body with the code's HTTP status. */
  export default class S3Error extends Error {
    constructor(code: string, message: string, detail?: Record<string, string>);
    readonly code: string;
    readonly status: number;
  }
}

declare module 'dynalite' {
  import type { Server } from 'node:http';

  interface DynaliteOptions {
    /** LevelDB directory; in memory when absent. */
    path?: string;
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
    maxItemSizeKb?: number;
  }

  export default function dynalite(options?: DynaliteOptions): Server;
}
