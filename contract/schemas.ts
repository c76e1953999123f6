/**
 * The external contract (../shared/CONTRACT.md v2) as zod schemas: every request and response body,
 * the statuses and the error codes. The API validates with these, the OpenAPI document is generated
 * from them (openapi.ts), the tests check responses against that document, and the client library
 * imports the inferred types (type-only, so the library carries no zod at run time).
 */
import * as z from 'zod';

// ---------- statuses ----------

/** An image's life; it never moves backwards. `expired`: the URL ran out and nothing was uploaded. */
export const ImageStatusSchema = z
  .enum(['pending', 'uploaded', 'processing', 'ready', 'failed', 'expired'])
  .meta({ id: 'ImageStatus' });
export type ImageStatus = z.infer<typeof ImageStatusSchema>;

/** A batch item is an image, or a file refused at the edge (`rejected`). */
export const ItemStatusSchema = z.enum([...ImageStatusSchema.options, 'rejected']).meta({ id: 'ItemStatus' });
export type ItemStatus = z.infer<typeof ItemStatusSchema>;

export const ITEM_STATUSES: readonly ItemStatus[] = ItemStatusSchema.options;

/** The statuses an item never leaves. */
export const FINAL_STATUSES: ReadonlySet<ItemStatus> = new Set(['ready', 'failed', 'rejected', 'expired']);
export const isFinal = (status: ItemStatus) => FINAL_STATUSES.has(status);

// ---------- error codes ----------

/** Codes of whole-request errors, with the HTTP status each is answered with. */
export const API_ERROR_STATUS = {
  InvalidRequest: 400,
  TooManyFiles: 400,
  Unauthorized: 401,
  NotFound: 404,
  MethodNotAllowed: 405,
  AlreadyUploaded: 409,
  PayloadTooLarge: 413,
  QuotaExceeded: 429,
  RateLimited: 429,
  HeadersTooLarge: 431,
  InternalError: 500,
  ServiceUnavailable: 503,
} as const;
export type ApiErrorCode = keyof typeof API_ERROR_STATUS;
export const ApiErrorCodeSchema = z
  .enum(Object.keys(API_ERROR_STATUS) as [ApiErrorCode, ...ApiErrorCode[]])
  .meta({ id: 'ApiErrorCode' });

/** Why one file of a batch was refused at the edge (`rejected`) while the rest proceeded. */
export const FileRejectionCodeSchema = z
  .enum(['InvalidName', 'UnsupportedType', 'InvalidSize', 'TooLarge', 'InvalidChecksum'])
  .meta({ id: 'FileRejectionCode' });
export type FileRejectionCode = z.infer<typeof FileRejectionCodeSchema>;

/** Why an uploaded image ended `failed`. */
export const FailureCodeSchema = z
  .enum([
    'UnsupportedFormat',
    'TooManyPixels',
    'TooManyFrames',
    'CorruptImage',
    'TooLarge',
    'ChecksumMismatch',
    'ProcessingTimeout',
    'ProcessingFailed',
  ])
  .meta({ id: 'FailureCode' });
export type FailureCode = z.infer<typeof FailureCodeSchema>;

/** At most this many `details` entries in an error body, whatever the input. */
export const MAX_ERROR_DETAILS = 20;

export const ErrorInfoSchema = z
  .object({ code: z.string().max(64), message: z.string().max(1000) })
  .meta({ id: 'ErrorInfo' });
export type ErrorInfo = z.infer<typeof ErrorInfoSchema>;

export const ErrorBodySchema = z
  .object({
    error: z.object({
      code: ApiErrorCodeSchema,
      message: z.string().max(1000),
      details: z
        .array(z.object({ path: z.string().max(200), message: z.string().max(500) }))
        .max(MAX_ERROR_DETAILS)
        .optional(),
    }),
  })
  .meta({ id: 'ErrorBody' });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

// ---------- shared pieces ----------

const Id = z
  .string()
  .regex(/^[0-9A-HJKMNP-TV-Z]{26}$/)
  .meta({ id: 'Id', description: 'A ULID' });
const Timestamp = z.iso.datetime().meta({ description: 'ISO-8601, UTC' });

export const PresignedUploadSchema = z
  .object({
    method: z.literal('PUT'),
    url: z.url(),
    headers: z.record(z.string(), z.string()).meta({
      description: 'Send every one of these headers with exactly these values.',
    }),
  })
  .meta({ id: 'PresignedUpload' });
export type PresignedUpload = z.infer<typeof PresignedUploadSchema>;

// ---------- POST /v1/uploads ----------

/** One file as a client declares it. Checked one by one: a bad file is rejected alone. */
export const FileRequestSchema = z
  .object({
    name: z.string().meta({ description: '1-255 characters, no control characters or path separators' }),
    type: z.string().meta({
      description:
        'An accepted content type, or "", application/octet-stream or image/jpg when unknown (the bytes decide)',
    }),
    size: z.number().int().min(1),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/)
      .optional(),
  })
  .meta({ id: 'FileRequest' });
export type FileRequest = z.infer<typeof FileRequestSchema>;

export const UploadRequestSchema = z
  .object({
    files: z.array(FileRequestSchema).min(1),
    callbackUrl: z.url().max(2048).optional().meta({
      description: 'Where to POST this batch\'s "batch.completed" webhook (Standard Webhooks)',
    }),
  })
  .meta({ id: 'UploadRequest' });
export type UploadRequest = z.infer<typeof UploadRequestSchema>;

export const CreatedItemSchema = z
  .union([
    z.object({
      index: z.number().int().min(0),
      imageId: Id,
      status: z.literal('pending'),
      upload: PresignedUploadSchema,
    }),
    z.object({
      index: z.number().int().min(0),
      imageId: Id,
      status: z.literal('ready'),
      duplicateOf: Id,
    }),
    z.object({ index: z.number().int().min(0), status: z.literal('rejected'), error: ErrorInfoSchema }),
  ])
  .meta({ id: 'CreatedItem' });
export type CreatedItem = z.infer<typeof CreatedItemSchema>;

export const CreatedBatchSchema = z
  .object({ batchId: Id, expiresAt: Timestamp, items: z.array(CreatedItemSchema) })
  .meta({ id: 'CreatedBatch' });
export type CreatedBatch = z.infer<typeof CreatedBatchSchema>;

// ---------- GET /v1/images/{imageId} ----------

export const VariantViewSchema = z
  .object({
    name: z.string(),
    format: z.string(),
    width: z.number().int(),
    height: z.number().int(),
    size: z.number().int(),
    url: z.url(),
  })
  .meta({ id: 'Variant' });
export type VariantView = z.infer<typeof VariantViewSchema>;

export const ImageViewSchema = z
  .object({
    imageId: Id,
    batchId: Id,
    index: z.number().int().min(0),
    name: z.string(),
    status: ImageStatusSchema,
    type: z.string(),
    size: z.number().int(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    width: z.number().int().optional().meta({ description: 'Of the upright image' }),
    height: z.number().int().optional(),
    format: z.string().optional(),
    placeholder: z.string().optional().meta({ description: 'ThumbHash, base64' }),
    variants: z.array(VariantViewSchema).optional().meta({ description: 'Only when ready' }),
    error: ErrorInfoSchema.optional().meta({ description: 'Only when failed' }),
    duplicateOf: Id.optional(),
  })
  .meta({ id: 'Image' });
export type ImageView = z.infer<typeof ImageViewSchema>;

export const RejectedViewSchema = z
  .object({
    index: z.number().int().min(0),
    name: z.string(),
    status: z.literal('rejected'),
    createdAt: Timestamp,
    error: ErrorInfoSchema,
  })
  .meta({ id: 'RejectedItem' });
export type RejectedView = z.infer<typeof RejectedViewSchema>;

export const ItemViewSchema = z.union([ImageViewSchema, RejectedViewSchema]).meta({ id: 'BatchItem' });
export type ItemView = z.infer<typeof ItemViewSchema>;

// ---------- GET /v1/batches/{batchId} ----------

export const CountsSchema = z
  .object(
    Object.fromEntries(ITEM_STATUSES.map((s) => [s, z.number().int().min(0)])) as Record<
      ItemStatus,
      z.ZodNumber
    >,
  )
  .meta({ id: 'Counts' });
export type Counts = Record<ItemStatus, number>;

export const BatchViewSchema = z
  .object({
    batchId: Id,
    total: z.number().int().min(0),
    counts: CountsSchema,
    complete: z.boolean(),
    expiresAt: Timestamp,
    items: z.array(ItemViewSchema),
    nextCursor: z.string().optional(),
  })
  .meta({ id: 'Batch' });
export type BatchView = z.infer<typeof BatchViewSchema>;

export const PageQuerySchema = z.object({
  limit: z.string().optional().meta({ description: 'Items per page, 1-500 (default 100)' }),
  cursor: z.string().optional().meta({ description: 'nextCursor of the previous page' }),
});

// ---------- POST /v1/images/{imageId}/upload ----------

export const UploadUrlSchema = z
  .object({ imageId: Id, expiresAt: Timestamp, upload: PresignedUploadSchema })
  .meta({ id: 'UploadUrl' });
export type UploadUrl = z.infer<typeof UploadUrlSchema>;

// ---------- GET /v1/limits ----------

export const LimitsSchema = z
  .object({
    maxFilesPerBatch: z.number().int(),
    maxBytes: z.number().int(),
    acceptedTypes: z.array(z.string()),
    uploadUrlTtlSeconds: z.number().int(),
    variants: z.array(
      z.object({ name: z.string(), format: z.string(), width: z.number().int(), height: z.number().int() }),
    ),
  })
  .meta({ id: 'Limits' });
export type Limits = z.infer<typeof LimitsSchema>;

// ---------- GET /v1/health ----------

export const HealthSchema = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });

// ---------- webhooks (see Push) ----------

export const BatchCompletedEventSchema = z
  .object({
    type: z.literal('batch.completed'),
    timestamp: Timestamp,
    data: z.object({ batchId: Id, total: z.number().int(), counts: CountsSchema, complete: z.literal(true) }),
  })
  .meta({ id: 'BatchCompletedEvent' });
export type BatchCompletedEvent = z.infer<typeof BatchCompletedEventSchema>;
