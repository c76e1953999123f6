import { Agent, request } from 'node:http';
import { S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/protocols';
import { LOCAL_CREDENTIALS } from './local-clients.ts';

export interface RawResponse {
  status: number;
  body: string;
}

/** RFC 3986 encoding of one path segment, as SigV4 (and the SDK) encode S3 keys. */
export const encodeSegment = (segment: string) =>
  encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The canonical form of a path as the server computes it: decoded, then encoded segment by segment. */
const canonicalPath = (path: string) => decodeURIComponent(path).split('/').map(encodeSegment).join('/');

const presigner = new S3RequestPresigner({
  credentials: LOCAL_CREDENTIALS,
  region: 'us-east-1',
  sha256: Sha256,
});
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

/**
 * Sends `path` to the local S3 server exactly as written (no URL normalisation: `..`, `%2e%2e`
 * and `\` arrive as they are), presigned with the published local credentials the way an S3
 * client would sign it, so the request passes the signature check and reaches the store.
 */
export async function rawS3Request(
  endpoint: string,
  method: string,
  path: string,
  options: { body?: Buffer | string; headers?: Record<string, string>; query?: Record<string, string> } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(endpoint);
  const signed = await presigner.presign(
    new HttpRequest({
      method,
      protocol: 'http:',
      hostname,
      port: Number(port),
      path: canonicalPath(path),
      query: options.query ?? {},
      headers: { host: `${hostname}:${port}` },
    }),
    { expiresIn: 300 },
  );
  const query = Object.entries(signed.query ?? {})
    .map(([name, value]) => `${encodeSegment(name)}=${encodeSegment(String(value))}`)
    .join('&');
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, method, path: `${path}?${query}`, headers: options.headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
