/**
 * Every object key and tag the pipeline uses, in one place: the API builds upload keys, the optimizer
 * and reconciler parse them, the optimizer and DELETE build variant keys, and the CDK stack's
 * lifecycle rule and the URL signer share the tags.
 */
import { OUTPUT_FORMATS, type VariantSpec } from '../variants.ts';

/**
 * Tag every presigned upload carries; a lifecycle rule on it (under the upload prefix) expires
 * abandoned uploads. A re-PUT sets it again, so nothing that must be kept lives under that prefix:
 * the upload key is only an inbox, and a processed original is kept beside its variants.
 */
export const INCOMING_TAG = { key: 'pipeline-state', value: 'incoming' } as const;
/** Tag of a kept original (beside its variants): a lifecycle rule moves these to a colder class. */
export const KEPT_ORIGINAL_TAG = { key: 'pipeline-state', value: 'original' } as const;

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

/**
 * The folder, in the variants bucket, of everything made from one set of bytes of one image: its
 * variants and the original they were made from. The folder is named after the bytes' SHA-256, so
 * two different uploads to one URL can never mix their files, and the record names the one folder
 * that belongs to it. `imageFolder(imageId)` holds every folder of the image.
 */
export const outputFolder = (imageId: string, sha256Hex: string) =>
  `${imageFolder(imageId)}${sha256Hex.slice(0, 16)}/`;
export const imageFolder = (imageId: string) => `${imageId}/`;

/** A variant's key in the variants bucket. */
export const variantKey = (folder: string, spec: Pick<VariantSpec, 'name' | 'format'>) =>
  `${folder}${variantFileName(spec)}`;

/** The kept original's key in the variants bucket: the bytes the variants were made from. */
export const originalKey = (folder: string) => `${folder}original`;

/** The URL path of a key: each segment URI-encoded, `/` kept (as S3 and CloudFront expect). */
export const encodeKeyPath = (key: string) =>
  key
    .split('/')
    .map((segment) =>
      encodeURIComponent(segment).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join('/');
