import { describe, expect, it } from 'vitest';
import { objectsInNotification } from '../../../functions/shared/notify/s3-events.ts';
import { parseUploadKey, uploadKey } from '../../../functions/shared/storage/object-keys.ts';

const event = (key: string, eventName = 'ObjectCreated:Put') =>
  JSON.stringify({ Records: [{ eventName, s3: { bucket: { name: 'uploads-bucket' }, object: { key } } }] });

describe('S3 notifications on the queue', () => {
  it('decodes keys as S3 encodes them, + standing for a space', () => {
    expect(objectsInNotification(event('uploads/a+b%2Bc%C3%A9.jpg'))).toEqual([
      { bucket: 'uploads-bucket', key: 'uploads/a b+cé.jpg' },
    ]);
  });

  it('names no object for s3:TestEvent, removals, or a body that is not an S3 event', () => {
    const testEvent = JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: 'b' });
    expect(objectsInNotification(testEvent)).toEqual([]);
    expect(objectsInNotification(event('uploads/x', 'ObjectRemoved:Delete'))).toEqual([]);
    expect(objectsInNotification('not json')).toEqual([]);
    expect(objectsInNotification('null')).toEqual([]);
  });

  it('accepts only keys the pipeline built', () => {
    const batchId = '01JAAAAAAAAAAAAAAAAAAAAAAA';
    const imageId = '01JBBBBBBBBBBBBBBBBBBBBBBB';
    expect(parseUploadKey('uploads/', uploadKey('uploads/', batchId, imageId))).toEqual({ batchId, imageId });
    expect(uploadKey('uploads/', batchId, imageId)).toBe(`uploads/${batchId}/${imageId}`);
    // Another prefix of the same length is not this one.
    expect(parseUploadKey('uploads/', `inboxes/${batchId}/${imageId}`)).toBeUndefined();
    expect(parseUploadKey('uploads/', `variants/${batchId}/${imageId}`)).toBeUndefined();
    expect(parseUploadKey('uploads/', `uploads/${batchId}/${imageId}/x`)).toBeUndefined();
    expect(parseUploadKey('uploads/', 'uploads/../../etc/passwd')).toBeUndefined();
  });
});

describe('what a created record carries besides its key', () => {
  const record = (object: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      Records: [
        {
          eventName: 'ObjectCreated:CompleteMultipartUpload',
          s3: { bucket: { name: 'uploads-bucket' }, object: { key: 'uploads/a', ...object } },
          ...extra,
        },
      ],
    });

  it('gives the event time as an ISO instant, and none when the event has no valid one', () => {
    expect(objectsInNotification(record({}, { eventTime: '2026-12-01T10:17:00.5+01:00' }))).toEqual([
      { bucket: 'uploads-bucket', key: 'uploads/a', eventTime: '2026-12-01T09:17:00.500Z' },
    ]);
    for (const eventTime of ['yesterday', '', 1764580620000, ['2026-12-01T10:17:00Z'], null]) {
      expect(objectsInNotification(record({}, { eventTime }))).toEqual([
        { bucket: 'uploads-bucket', key: 'uploads/a' },
      ]);
    }
  });

  it('gives the ETag bare, whether S3 sent it weak, quoted or bare, and none when it is empty', () => {
    for (const eTag of ['W/"9b2cf535f27731c974343645a3985328"', '"9b2cf535f27731c974343645a3985328"']) {
      expect(objectsInNotification(record({ eTag }))).toEqual([
        { bucket: 'uploads-bucket', key: 'uploads/a', etag: '9b2cf535f27731c974343645a3985328' },
      ]);
    }
    for (const eTag of ['', 42]) {
      expect(objectsInNotification(record({ eTag }))).toEqual([
        { bucket: 'uploads-bucket', key: 'uploads/a' },
      ]);
    }
  });

  it('leaves out a record with no bucket name, no key or a key no S3 key encodes to, and keeps the well-formed ones beside it', () => {
    const good = { eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'b' }, object: { key: 'k' } } };
    const body = JSON.stringify({
      Records: [
        { ...good, s3: { object: { key: 'k' } } },
        { ...good, s3: { bucket: { name: 'b' } } },
        { ...good, eventName: 7 },
        { ...good, s3: { bucket: { name: 'b' }, object: { key: 'uploads/%ZZ' } } },
        good,
      ],
    });
    expect(objectsInNotification(body)).toEqual([{ bucket: 'b', key: 'k' }]);
  });
});
