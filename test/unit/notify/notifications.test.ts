import { describe, expect, it } from 'vitest';
import { objectsInNotification } from '../../../functions/shared/notify/s3-events.ts';
import { parseUploadKey } from '../../../functions/shared/storage/object-keys.ts';

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
    expect(parseUploadKey('uploads/', `uploads/${batchId}/${imageId}`)).toEqual({ batchId, imageId });
    expect(parseUploadKey('uploads/', `variants/${batchId}/${imageId}`)).toBeUndefined();
    expect(parseUploadKey('uploads/', `uploads/${batchId}/${imageId}/x`)).toBeUndefined();
    expect(parseUploadKey('uploads/', 'uploads/../../etc/passwd')).toBeUndefined();
  });
});
