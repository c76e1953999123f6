import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { formatUrl } from '@aws-sdk/core/util';
import { S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
import { getEndpointFromInstructions } from '@smithy/core/endpoints';
import { HttpRequest } from '@smithy/core/protocols';
import type { PresignedUpload } from '../../../contract/index.ts';
import { encodeKeyPath, INCOMING_TAG } from './object-keys.ts';
import type { PresignPutRequest, UrlSigner } from './ports.ts';

const INCOMING_TAGGING = `${INCOMING_TAG.key}=${INCOMING_TAG.value}`;

const HOUR_MS = 3_600_000;
const MAX_PRESIGN_SECONDS = 604_800;
const SHA256_HEX = /^[0-9a-f]{64}$/i;
/** GET URLs kept per process (about 0.5 KB each). */
const GET_CACHE_SIZE = 20_000;
/** Stands for the key in a template request; replaced by each real key. */
const TEMPLATE_KEY = 'presign-template-key';
/** Headers the SDK adds for its own bookkeeping; a presigned URL must not sign them. */
const SDK_HEADERS = ['amz-sdk-invocation-id', 'amz-sdk-request', 'x-amz-user-agent'];
/**
 * Checksums the SDK computes itself when the client's `requestChecksumCalculation` is
 * `WHEN_SUPPORTED` (its default). Presigning has no body, so they would be the checksum of zero
 * bytes (`x-amz-checksum-crc32=AAAAAA==`), hoisted into the query, and S3 would refuse every real
 * upload (aws-sdk-js-v3#6994). Only the file's own `x-amz-checksum-sha256` (and GET's
 * `x-amz-checksum-mode`, which asks for no check of the request) may be signed.
 */
const isSdkChecksum = (name: string) => {
  const lower = name.toLowerCase();
  return (
    lower === 'x-amz-sdk-checksum-algorithm' ||
    (lower.startsWith('x-amz-checksum-') &&
      lower !== 'x-amz-checksum-sha256' &&
      lower !== 'x-amz-checksum-mode')
  );
};
// Signed as headers, not hoisted into the query: S3 then compares them with what is sent.
const PUT_SIGNABLE = new Set(['content-type', 'content-length']);
const PUT_UNHOISTABLE = new Set(['x-amz-checksum-sha256', 'x-amz-tagging']);

/** A request the SDK built once (endpoint, path style, headers), and the presigner for it. */
interface Template {
  request: HttpRequest;
  presigner: S3RequestPresigner;
  signingRegion: string | undefined;
  signingService: string | undefined;
}

/**
 * Presigns S3 URLs. Uploads are pinned to their key, content type, length, tag and (when known)
 * SHA-256: those are signed as headers, so S3 refuses a request that differs in any of them.
 *
 * The SDK's `getSignedUrl` resolves the endpoint and runs the whole middleware stack for every URL
 * (0.3-0.6 ms each here), which made a 500-image batch page cost 1,500 of them. This signer lets
 * the SDK build one request per bucket and kind (the same middleware, so endpoint rules, path style
 * and headers are the SDK's own), then signs a copy of it per key with the same presigner
 * `getSignedUrl` uses. The URLs are identical to `getSignedUrl`'s on a client that computes
 * checksums only when required (a test holds them to it): whatever the client's setting, an upload
 * URL signs no checksum but the file's own SHA-256.
 *
 * URLs signed with temporary credentials (a Lambda role) stop working when those credentials
 * expire, whatever their own expiry says.
 */
export class S3UrlSigner implements UrlSigner {
  readonly #client: S3Client;
  readonly #templates = new Map<string, Promise<Template>>();
  /** This hour's GET URLs: they do not change within the hour, and clients re-read them while polling. */
  readonly #gets = new Map<string, string>();
  #getsHour = 0;
  readonly #now: () => Date;

  constructor(client: S3Client, options: { now?: () => Date } = {}) {
    this.#client = client;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * The returned headers are every signed header the client must send except `host` and
   * `content-length`, which fetch, browsers and curl set themselves from the body; a body of
   * another length therefore fails the signature.
   */
  async presignPut(request: PresignPutRequest): Promise<PresignedUpload> {
    const { bucket, key, contentType, contentLength, sha256Hex, expiresInSeconds, signedAt } = request;
    if (sha256Hex !== undefined && !SHA256_HEX.test(sha256Hex)) {
      throw new TypeError('sha256Hex must be 64 hexadecimal characters');
    }
    const checksum = sha256Hex === undefined ? undefined : Buffer.from(sha256Hex, 'hex').toString('base64');
    const template = await this.#template(
      `PUT ${bucket} ${checksum !== undefined}`,
      () =>
        // Placeholder values; each URL gets its own below. The template fixes which headers exist.
        new PutObjectCommand({
          Bucket: bucket,
          Key: TEMPLATE_KEY,
          ContentType: 'application/octet-stream',
          ContentLength: 1,
          ...(checksum !== undefined && { ChecksumSHA256: 'A'.repeat(43) + '=' }),
          Tagging: INCOMING_TAGGING,
        }),
    );
    const values: Record<string, string | undefined> = {
      'content-type': contentType,
      'content-length': String(contentLength),
      'x-amz-checksum-sha256': checksum,
      'x-amz-tagging': INCOMING_TAGGING,
    };
    const toSign = forKey(template, key);
    for (const name of Object.keys(toSign.headers)) {
      const value = values[name.toLowerCase()];
      if (value !== undefined) toSign.headers[name] = value;
    }
    const signed = await template.presigner.presign(toSign, {
      expiresIn: expiresInSeconds,
      signingDate: signedAt ?? this.#now(),
      signableHeaders: PUT_SIGNABLE,
      unhoistableHeaders: PUT_UNHOISTABLE,
      ...signing(template),
    });
    const url = formatUrl(signed);
    const headers: Record<string, string> = {};
    for (const name of signedHeaders(url)) {
      if (name === 'host' || name === 'content-length') continue;
      const value = values[name];
      // A header signed by the SDK that this adapter does not know would make every upload fail.
      if (value === undefined) throw new Error(`Presigned upload signs an unexpected header: ${name}`);
      headers[name] = value;
    }
    return { method: 'PUT', url, headers };
  }

  /**
   * Signed as of the start of the current hour and valid `minValiditySeconds` past its end, so
   * the URL is the same all hour (clients and CDNs can cache it) and always valid at least that long.
   */
  async presignGet(bucket: string, key: string, minValiditySeconds: number): Promise<string> {
    const expiresIn = minValiditySeconds + HOUR_MS / 1000;
    if (expiresIn > MAX_PRESIGN_SECONDS) {
      throw new RangeError(`minValiditySeconds must be at most ${MAX_PRESIGN_SECONDS - HOUR_MS / 1000}`);
    }
    const hour = Math.floor(this.#now().getTime() / HOUR_MS);
    if (hour !== this.#getsHour) {
      this.#gets.clear();
      this.#getsHour = hour;
    }
    const cacheKey = `${bucket}\n${key}\n${expiresIn}`;
    const cached = this.#gets.get(cacheKey);
    if (cached !== undefined) return cached;
    const signingDate = new Date(hour * HOUR_MS);
    const template = await this.#template(
      `GET ${bucket}`,
      () => new GetObjectCommand({ Bucket: bucket, Key: TEMPLATE_KEY }),
    );
    const signed = await template.presigner.presign(forKey(template, key), {
      expiresIn,
      signingDate,
      ...signing(template),
    });
    const url = formatUrl(signed);
    if (this.#gets.size >= GET_CACHE_SIZE) this.#gets.delete(this.#gets.keys().next().value as string);
    this.#gets.set(cacheKey, url);
    return url;
  }

  #template(id: string, command: () => GetObjectCommand | PutObjectCommand): Promise<Template> {
    let template = this.#templates.get(id);
    if (!template) {
      template = buildTemplate(this.#client, command());
      // A failure (e.g. credentials not yet available) is not cached.
      template.catch(() => this.#templates.delete(id));
      this.#templates.set(id, template);
    }
    return template;
  }
}

/**
 * Runs the command through the client's middleware up to signing, as `getSignedUrl` does, and keeps
 * the request instead of sending it; the presigner is configured as `getSignedUrl` configures it.
 */
async function buildTemplate(
  client: S3Client,
  command: GetObjectCommand | PutObjectCommand,
): Promise<Template> {
  const config = client.config as unknown as Parameters<typeof getEndpointFromInstructions>[2];
  const endpoint = await getEndpointFromInstructions(
    command.input,
    command.constructor as unknown as Parameters<typeof getEndpointFromInstructions>[1],
    config,
  );
  const scheme = endpoint.properties?.authSchemes?.[0] as
    | { name?: string; signingName?: string; signingRegion?: string; signingRegionSet?: string[] }
    | undefined;
  const region = scheme?.name === 'sigv4a' ? scheme.signingRegionSet?.join(',') : scheme?.signingRegion;
  const presigner = new S3RequestPresigner({
    ...client.config,
    ...(scheme?.signingName ? { signingName: scheme.signingName } : {}),
    region: async () => region ?? (await client.config.region()),
  });
  let captured: Omit<Template, 'presigner'> | undefined;
  const stack = client.middlewareStack.clone();
  stack.addRelativeTo(
    (_next: unknown, context: Record<string, unknown>) => async (args: { request: unknown }) => {
      if (!HttpRequest.isInstance(args.request)) throw new Error('The SDK built no HTTP request to presign.');
      captured = {
        request: args.request,
        signingRegion: (context.signing_region as string | undefined) ?? region,
        signingService: context.signing_service as string | undefined,
      };
      return { response: {}, output: { $metadata: {} } };
    },
    {
      name: 'presignTemplateMiddleware',
      relation: 'before',
      toMiddleware: 'awsAuthMiddleware',
      override: true,
    },
  );
  // biome-ignore lint/suspicious/noExplicitAny: the SDK's handler types differ per command; the capture above is typed.
  await (command as any).resolveMiddleware(stack, client.config, {})({ input: command.input });
  if (!captured) throw new Error('The SDK did not reach signing; cannot build a presign template.');
  for (const header of SDK_HEADERS) delete captured.request.headers[header];
  for (const header of Object.keys(captured.request.headers)) {
    if (isSdkChecksum(header)) delete captured.request.headers[header];
  }
  return { ...captured, presigner };
}

/** A copy of the template request addressed to `key`. */
function forKey(template: Template, key: string): HttpRequest {
  const request = HttpRequest.clone(template.request);
  if (!request.path.endsWith(TEMPLATE_KEY)) throw new Error(`Unexpected template path ${request.path}`);
  request.path = request.path.slice(0, -TEMPLATE_KEY.length) + encodeKeyPath(key);
  return request;
}

const signing = (template: Template) => ({
  ...(template.signingRegion ? { signingRegion: template.signingRegion } : {}),
  ...(template.signingService ? { signingService: template.signingService } : {}),
});

function signedHeaders(url: string): string[] {
  return (new URL(url).searchParams.get('X-Amz-SignedHeaders') ?? '').split(';').filter(Boolean);
}
