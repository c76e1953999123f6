import { describe, expect, it } from 'vitest';
import { readLocalSettings } from '../../../local/settings.ts';

describe('the local stack settings', () => {
  it('put the storage endpoint on PORT + 1 by default, the same on every start', () => {
    expect(readLocalSettings({}).s3Port).toBe(3001);
    expect(readLocalSettings({ PORT: '4000' }).s3Port).toBe(4001);
    expect(readLocalSettings({ PORT: '4000', S3_PORT: '9000' }).s3Port).toBe(9000);
  });

  it('pick free ports for both when PORT is 0, unless S3_PORT is set', () => {
    expect(readLocalSettings({ PORT: '0' }).s3Port).toBe(0);
    expect(readLocalSettings({ PORT: '0', S3_PORT: '9000' }).s3Port).toBe(9000);
  });

  it('refuse a storage port that cannot be used', () => {
    expect(() => readLocalSettings({ PORT: '65535' })).toThrow(/S3_PORT/);
    expect(() => readLocalSettings({ PORT: '4000', S3_PORT: '4000' })).toThrow(/S3_PORT/);
    expect(() => readLocalSettings({ S3_PORT: '70000' })).toThrow(/S3_PORT/);
  });

  it('allow any origin by default, or exactly the listed ones', () => {
    expect(readLocalSettings({}).corsAllowedOrigins).toEqual(['*']);
    expect(
      readLocalSettings({ CORS_ALLOWED_ORIGINS: 'https://a.example,http://localhost:5173' })
        .corsAllowedOrigins,
    ).toEqual(['https://a.example', 'http://localhost:5173']);
  });
});
