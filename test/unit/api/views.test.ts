import { describe, expect, it } from 'vitest';
import { effectiveStatus, etagMatches, itemState, weakEtag } from '../../../functions/api/status/views.ts';
import type { ImageItem } from '../../../functions/shared/records/types.ts';

const pending: ImageItem = {
  batchId: '01J0000000000000000000000A',
  itemId: '01J0000000000000000000000B',
  imageId: '01J0000000000000000000000B',
  index: 0,
  owner: 'alice',
  name: 'a.jpg',
  status: 'pending',
  type: 'image/jpeg',
  size: 1,
  key: 'uploads/x/y',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  uploadExpiresAt: '2026-01-01T00:15:00.000Z',
};

describe('status views', () => {
  it('reports a pending image as expired once its upload URL ran out', () => {
    expect(effectiveStatus(pending, new Date('2026-01-01T00:14:59Z'))).toBe('pending');
    expect(effectiveStatus(pending, new Date('2026-01-01T00:15:00Z'))).toBe('expired');
    expect(effectiveStatus({ ...pending, status: 'uploaded' }, new Date('2026-01-02T00:00:00Z'))).toBe(
      'uploaded',
    );
  });

  it('changes the tag when the status changes, including to expired', () => {
    const before = weakEtag([itemState(pending, new Date('2026-01-01T00:10:00Z'))]);
    const later = weakEtag([itemState(pending, new Date('2026-01-01T00:20:00Z'))]);
    const same = weakEtag([itemState(pending, new Date('2026-01-01T00:11:00Z'))]);
    expect(later).not.toBe(before);
    expect(same).toBe(before);
  });

  it('matches If-None-Match weakly, in lists and with *', () => {
    const tag = weakEtag(['x']);
    expect(etagMatches(tag, tag)).toBe(true);
    expect(etagMatches(tag.replace(/^W\//, ''), tag)).toBe(true);
    expect(etagMatches(`"other", ${tag}`, tag)).toBe(true);
    expect(etagMatches('*', tag)).toBe(true);
    expect(etagMatches('"other"', tag)).toBe(false);
    expect(etagMatches(undefined, tag)).toBe(false);
  });
});
