import type { S3Event } from 'aws-lambda';

/** An object S3 says was created. */
export interface CreatedObject {
  bucket: string;
  /** The object key, decoded (not as S3 events carry it). */
  key: string;
  /** When S3 stored it (the event's `eventTime`), when the event says. */
  eventTime?: string;
}

/**
 * The created objects an SQS message body names. S3 sends a `s3:TestEvent` when a notification is
 * configured; it names no object, and neither does a body that is not an S3 event.
 */
export function objectsInNotification(body: string): CreatedObject[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return [];
  }
  const records = (parsed as Partial<S3Event> | null)?.Records;
  if (!Array.isArray(records)) return [];
  return records
    .filter(
      (record) => typeof record?.eventName === 'string' && record.eventName.startsWith('ObjectCreated:'),
    )
    .map((record) => ({
      bucket: record.s3.bucket.name,
      key: decodeEventKey(record.s3.object.key),
      ...(typeof record.eventTime === 'string' && !Number.isNaN(Date.parse(record.eventTime))
        ? { eventTime: new Date(record.eventTime).toISOString() }
        : {}),
    }));
}

/** Keys in S3 events are URL-encoded, with `+` standing for a space. */
export const decodeEventKey = (key: string) => decodeURIComponent(key.replace(/\+/g, ' '));

/** S3 form-encodes keys in notifications: `/` kept, space as `+`, everything else percent-encoded. */
export function encodeEventKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/%2F/g, '/')
    .replace(/%20/g, '+')
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
