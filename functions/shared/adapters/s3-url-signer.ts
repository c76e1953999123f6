import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { PresignedUpload, PresignPutRequest, UrlSigner } from '../ports.ts';

/** Tag every presigned upload must carry; a lifecycle rule on this tag expires abandoned uploads
 * (so whatever keeps an original must retag or copy it). */
export const INCOMING_TAG = { key: 'pipeline-state', value: 'incoming' } as const;
const INCOMING_TAGGING = `${INCOMING_TAG.key}=${INCOMING_TAG.value}`;

const HOUR_MS = 3_600_000;
const MAX_PRESIGN_SECONDS = 604_800;
const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * Presigns S3 URLs. Uploads are pinned to their key, content type, length, tag and (when known)
 * SHA-256: those are signed as headers, so S3 refuses a request that differs in any of them.
 *
 * URLs signed with temporary credentials (a Lambda role) stop working when those credentials
 * expire, whatever their own expiry says.
 */
export class S3UrlSigner implements UrlSigner {
  readonly #client: S3Client;

  constructor(client: S3Client) {
    this.#client = client;
  }

  /**
   * The returned headers are every signed header the client must send except `host` and
   * `content-length`, which fetch, browsers and curl set themselves from the body; a body of
   * another length therefore fails the signature.
   */
  async presignPut(request: PresignPutRequest): Promise<PresignedUpload> {
    const { bucket, key, contentType, contentLength, sha256Hex, expiresInSeconds } = request;
    if (sha256Hex !== undefined && !SHA256_HEX.test(sha256Hex)) {
      throw new TypeError('sha256Hex must be 64 hexadecimal characters');
    }
    const checksum = sha256Hex === undefined ? undefined : Buffer.from(sha256Hex, 'hex').toString('base64');
    const url = await getSignedUrl(
      this.#client,
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        ContentType: contentType,
        ContentLength: contentLength,
        ...(checksum !== undefined && { ChecksumSHA256: checksum }),
        Tagging: INCOMING_TAGGING,
      }),
      {
        expiresIn: expiresInSeconds,
        // Signed as headers, not hoisted into the query: S3 then compares them with what is sent.
        signableHeaders: new Set(['content-type', 'content-length']),
        unhoistableHeaders: new Set(['x-amz-checksum-sha256', 'x-amz-tagging']),
      },
    );
    const values: Record<string, string | undefined> = {
      'content-type': contentType,
      'x-amz-checksum-sha256': checksum,
      'x-amz-tagging': INCOMING_TAGGING,
    };
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
    const signingDate = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS);
    return getSignedUrl(this.#client, new GetObjectCommand({ Bucket: bucket, Key: key }), {
      expiresIn,
      signingDate,
    });
  }
}

function signedHeaders(url: string): string[] {
  return (new URL(url).searchParams.get('X-Amz-SignedHeaders') ?? '').split(';').filter(Boolean);
}
