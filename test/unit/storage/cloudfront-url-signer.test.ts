import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../functions/shared/config.ts';
import { CloudFrontUrlSigner } from '../../../functions/shared/storage/cloudfront-url-signer.ts';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PRIVATE_PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const DISTRIBUTION = 'https://d111111abcdef8.cloudfront.net';
const BUCKET = 'variants';
const KEY_PAIR_ID = 'K2JCJMDEHXQW5F';
const HOUR = 3_600_000;
// 10:17:30 UTC: 17.5 minutes into the hour.
const NOW = Date.UTC(2026, 11, 1, 10, 17, 30);

/** CloudFront's URL-safe base64: `+` `=` `/` become `-` `_` `~`. */
const fromCloudFrontBase64 = (value: string) =>
  Buffer.from(value.replace(/-/g, '+').replace(/_/g, '=').replace(/~/g, '/'), 'base64');

interface Policy {
  Statement: { Resource: string; Condition: { DateLessThan: { 'AWS:EpochTime': number } } }[];
}

/**
 * What CloudFront checks before it serves a signed URL (custom policy): the signature over the
 * policy with the key group's public key, the URL matching the policy's resource (`*` matches any
 * characters), and the time before `DateLessThan`.
 */
function cloudFrontAccepts(signedUrl: string, at: number): boolean {
  const url = new URL(signedUrl);
  const params = url.searchParams;
  if (params.get('Key-Pair-Id') !== KEY_PAIR_ID || params.get('Hash-Algorithm') !== 'SHA256') return false;
  const policyBytes = fromCloudFrontBase64(params.get('Policy') ?? '');
  const signature = fromCloudFrontBase64(params.get('Signature') ?? '');
  if (!verify('sha256', policyBytes, publicKey, signature)) return false;
  const policy = JSON.parse(policyBytes.toString('utf8')) as Policy;
  const [statement] = policy.Statement;
  if (!statement) return false;
  const pattern = new RegExp(
    `^${statement.Resource.split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  const unsigned = `${url.origin}${url.pathname}`;
  return pattern.test(unsigned) && at / 1000 < statement.Condition.DateLessThan['AWS:EpochTime'];
}

function signer(options: { now?: () => number; loadPrivateKey?: () => Promise<string> } = {}) {
  return new CloudFrontUrlSigner({
    distributionUrl: DISTRIBUTION,
    bucket: BUCKET,
    keyPairId: KEY_PAIR_ID,
    loadPrivateKey: options.loadPrivateKey ?? (() => Promise.resolve(PRIVATE_PEM)),
    now: options.now ?? (() => NOW),
  });
}

describe('CloudFrontUrlSigner', () => {
  it('signs a URL of the distribution that the public key verifies, for exactly that image', async () => {
    const url = await signer().presignGet(BUCKET, '01JEXAMPLEIMAGE/thumb.webp', 3600);
    expect(url.startsWith(`${DISTRIBUTION}/01JEXAMPLEIMAGE/thumb.webp?`)).toBe(true);
    expect(cloudFrontAccepts(url, NOW)).toBe(true);

    // The signature covers this image's variants, no other image's.
    const params = new URL(url).search;
    expect(cloudFrontAccepts(`${DISTRIBUTION}/01JEXAMPLEIMAGE/large.jpg${params}`, NOW)).toBe(true);
    expect(cloudFrontAccepts(`${DISTRIBUTION}/01JOTHERIMAGE00/thumb.webp${params}`, NOW)).toBe(false);
    // A policy changed after signing (a later expiry) no longer verifies.
    const parsed = new URL(url);
    const policy = JSON.parse(
      fromCloudFrontBase64(parsed.searchParams.get('Policy') ?? '').toString(),
    ) as Policy;
    const statement = policy.Statement[0];
    if (!statement) throw new Error('no statement');
    statement.Condition.DateLessThan['AWS:EpochTime'] += 86_400;
    parsed.searchParams.set(
      'Policy',
      Buffer.from(JSON.stringify(policy))
        .toString('base64')
        .replace(/\+/g, '-')
        .replace(/=/g, '_')
        .replace(/\//g, '~'),
    );
    expect(cloudFrontAccepts(parsed.toString(), NOW)).toBe(false);
  });

  it('is valid for at least the promised time and expires when promised: at the end of the hour, plus that time', async () => {
    const url = await signer().presignGet(BUCKET, '01JEXAMPLEIMAGE/thumb.webp', 3600);
    const hourStart = Math.floor(NOW / HOUR) * HOUR;
    const expiry = hourStart + HOUR + 3600 * 1000;
    expect(cloudFrontAccepts(url, NOW + 3600 * 1000)).toBe(true);
    expect(cloudFrontAccepts(url, expiry - 1000)).toBe(true);
    expect(cloudFrontAccepts(url, expiry)).toBe(false);
    expect(cloudFrontAccepts(url, expiry + 60_000)).toBe(false);
  });

  it('gives the same URL all hour (cacheable) and a new one the next hour, each valid long enough', async () => {
    let now = NOW;
    const s = signer({ now: () => now });
    const first = await s.presignGet(BUCKET, '01JEXAMPLEIMAGE/thumb.webp', 3600);
    now = NOW + 40 * 60_000; // 10:57:30, same hour
    expect(await s.presignGet(BUCKET, '01JEXAMPLEIMAGE/thumb.webp', 3600)).toBe(first);
    now = NOW + 45 * 60_000; // 11:02:30, next hour
    const next = await s.presignGet(BUCKET, '01JEXAMPLEIMAGE/thumb.webp', 3600);
    expect(next).not.toBe(first);
    // Signed at the last second of an hour, a URL still lives the promised hour.
    now = Math.floor(NOW / HOUR) * HOUR + HOUR - 1;
    const late = await signer({ now: () => now }).presignGet(BUCKET, '01JEXAMPLEIMAGE/thumb.webp', 3600);
    expect(cloudFrontAccepts(late, now + 3600 * 1000 - 1)).toBe(true);
  });

  it('encodes keys as URL paths, and the policy covers the encoded URL', async () => {
    const url = await signer().presignGet(BUCKET, 'odd folder/a+b (1).webp', 3600);
    expect(url.startsWith(`${DISTRIBUTION}/odd%20folder/a%2Bb%20%281%29.webp?`)).toBe(true);
    expect(cloudFrontAccepts(url, NOW)).toBe(true);
  });

  it('signs GETs of its own bucket only', async () => {
    await expect(signer().presignGet('uploads', '01JEXAMPLEIMAGE/original', 3600)).rejects.toThrow(
      'CloudFront serves the bucket variants',
    );
  });

  it('loads the private key once, and again after a failed load', async () => {
    let loads = 0;
    let fail = true;
    const s = signer({
      loadPrivateKey: () => {
        loads++;
        return fail ? Promise.reject(new Error('AccessDenied')) : Promise.resolve(PRIVATE_PEM);
      },
    });
    await expect(s.presignGet(BUCKET, 'a/thumb.webp', 3600)).rejects.toThrow('AccessDenied');
    fail = false;
    await s.presignGet(BUCKET, 'a/thumb.webp', 3600);
    await s.presignGet(BUCKET, 'b/thumb.webp', 3600);
    expect(loads).toBe(2);
  });

  it('refuses a distribution URL with a path', () => {
    expect(
      () =>
        new CloudFrontUrlSigner({
          distributionUrl: `${DISTRIBUTION}/variants`,
          bucket: BUCKET,
          keyPairId: KEY_PAIR_ID,
          loadPrivateKey: () => Promise.resolve(PRIVATE_PEM),
        }),
    ).toThrow('distributionUrl');
  });
});

describe('CloudFront settings (functions/shared/config.ts)', () => {
  const base = { TABLE_NAME: 't', UPLOAD_BUCKET: 'u', VARIANTS_BUCKET: 'v' };
  const cdn = {
    VARIANTS_CDN_URL: `${DISTRIBUTION}/`,
    CLOUDFRONT_KEY_PAIR_ID: KEY_PAIR_ID,
    CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbC123',
  };

  it('has no CDN without the settings (the local stack), and all three with them', () => {
    expect(parseConfig(base).cdn).toBeUndefined();
    expect(parseConfig({ ...base, ...cdn }).cdn).toEqual({
      url: DISTRIBUTION,
      keyPairId: KEY_PAIR_ID,
      privateKeySecretArn: cdn.CLOUDFRONT_PRIVATE_KEY_SECRET_ARN,
    });
  });

  it('refuses some CloudFront settings without the others, naming the missing ones', () => {
    const { CLOUDFRONT_KEY_PAIR_ID: _, ...partial } = cdn;
    expect(() => parseConfig({ ...base, ...partial })).toThrow('CLOUDFRONT_KEY_PAIR_ID');
    expect(() => parseConfig({ ...base, ...cdn, VARIANTS_CDN_URL: 'http://d1.cloudfront.net' })).toThrow(
      'VARIANTS_CDN_URL',
    );
  });
});
