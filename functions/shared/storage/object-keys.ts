/**
 * Every object key and tag the pipeline uses, in one place: the API builds upload keys, the optimizer
 * and reconciler parse them, the optimizer and DELETE build variant keys, and the CDK stack's
 * lifecycle rule and the URL signer share the tags.
 */
import { OUTPUT_FORMATS, type VariantSpec } from '../variants.ts';

/** Tag every presigned upload carries; a lifecycle rule on it expires abandoned uploads. */
export const INCOMING_TAG = { key: 'pipeline-state', value: 'incoming' } as const;
/** Tags of an original that became variants: it is kept (and may move to a cheaper storage class). */
export const PROCESSED_TAGS = { 'pipeline-state': 'processed' } as const;

const ULID = '[0-9A-HJKMNP-TV-Z]{26}';
const UPLOAD_KEY = new RegExp(`^(${ULID})/(${ULID})$`);

/** The object key of an upload: built by the server, never from the client's file name. */
export const uploadKey = (prefix: string, batchId: string, imageId: string) =>
  `${prefix}${batchId}/${imageId}`;

/** The ids in an upload key the pipeline built (`<prefix><batchId>/<imageId>`); anything else: undefined. */
export function parseUploadKey(
  prefix: string,
  key: string,
): { batchId: string; imageId: string } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const match = UPLOAD_KEY.exec(key.slice(prefix.length));
  return match?.[1] && match[2] ? { batchId: match[1], imageId: match[2] } : undefined;
}

export const variantFileName = (spec: Pick<VariantSpec, 'name' | 'format'>) =>
  `${spec.name}.${OUTPUT_FORMATS[spec.format].extension}`;

/** A variant's key in the variants bucket: one folder per image. */
export const variantKey = (imageId: string, spec: Pick<VariantSpec, 'name' | 'format'>) =>
  `${imageId}/${variantFileName(spec)}`;
