/** An object S3 says was created. */
export interface CreatedObject {
  bucket: string;
  /** The object key, decoded (not as S3 events carry it). */
  key: string;
  /** When S3 stored it (the event's `eventTime`), when the event says. */
  eventTime?: string;
  /** The ETag of the bytes whose arrival the event tells of, when it says (without quotes). */
  etag?: string;
}

/** S3 keys are at most 1,024 bytes of UTF-8; an encoded key is at most three times that. */
const MAX_ENCODED_KEY_LENGTH = 3 * 1024;

/**
 * The created objects an SQS message body names. S3 sends a `s3:TestEvent` when a notification is
 * configured; it names no object, and neither does a body that is not an S3 event. Whatever the
 * body, this never throws: a record that is not a well-formed `ObjectCreated` record is left out.
 */
export function objectsInNotification(body: string): CreatedObject[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return [];
  }
  const records = isObject(parsed) ? parsed.Records : undefined;
  if (!Array.isArray(records)) return [];
  return records.flatMap((record: unknown): CreatedObject[] => {
    if (!isObject(record) || typeof record.eventName !== 'string') return [];
    if (!record.eventName.startsWith('ObjectCreated:')) return [];
    const s3 = isObject(record.s3) ? record.s3 : undefined;
    const bucket = isObject(s3?.bucket) ? s3.bucket.name : undefined;
    const object = isObject(s3?.object) ? s3.object : undefined;
    if (typeof bucket !== 'string' || typeof object?.key !== 'string') return [];
    const key = decodeEventKey(object.key);
    if (key === undefined) return [];
    const etag =
      typeof object.eTag === 'string' && object.eTag !== '' ? normalizeEtag(object.eTag) : undefined;
    const eventTime =
      typeof record.eventTime === 'string' && !Number.isNaN(Date.parse(record.eventTime))
        ? new Date(record.eventTime).toISOString()
        : undefined;
    return [{ bucket, key, ...(etag ? { etag } : {}), ...(eventTime ? { eventTime } : {}) }];
  });
}

/**
 * Keys in S3 events are URL-encoded, with `+` standing for a space. `undefined` for what no S3 key
 * encodes to (a malformed `%` escape, an over-long key).
 */
export function decodeEventKey(key: string): string | undefined {
  if (key.length > MAX_ENCODED_KEY_LENGTH) return undefined;
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** S3 form-encodes keys in notifications: `/` kept, space as `+`, everything else percent-encoded. */
export function encodeEventKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/%2F/g, '/')
    .replace(/%20/g, '+')
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** An ETag as S3 reports it in headers (quoted) or events (bare), without quotes or `W/`. */
export const normalizeEtag = (etag: string) => etag.replace(/^W\//, '').replace(/"/g, '');

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
