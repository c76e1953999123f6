import { createAdapters } from '../shared/adapters.ts';
import { getConfig } from '../shared/config.ts';
import { observability } from '../shared/observability.ts';
import { CallbackPolicy } from '../shared/push/callback-url.ts';
import { type ApiDeps, type ApiEvent, handleApiRequest } from './router.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
const { records, moves, sharedFiles, quotas, objects, signer } = createAdapters(config);
const { logger, metrics, instrument } = observability('api');
const deps: ApiDeps = {
  uploads: {
    batches: records,
    sharedFiles,
    signer,
    quotas,
    uploadBucket: config.uploadBucket,
    uploadPrefix: config.uploadPrefix,
    limits: config.limits,
    callbacks: new CallbackPolicy({ allowPrivate: config.push.allowPrivateCallbacks }),
    metrics,
  },
  status: {
    batches: records,
    images: records,
    moves,
    sharedFiles,
    signer,
    objects,
    uploadBucket: config.uploadBucket,
    variantsBucket: config.variantsBucket,
    uploadUrlTtlSeconds: config.limits.uploadUrlTtlSeconds,
    maxOpenUploads: config.limits.maxOpenUploads,
    quotas,
  },
  limits: {
    maxFilesPerBatch: config.limits.maxFilesPerBatch,
    maxBytes: config.limits.maxBytes,
    acceptedTypes: [...config.limits.acceptedTypes],
    uploadUrlTtlSeconds: config.limits.uploadUrlTtlSeconds,
    variants: config.processing.variants.map(({ name, format, width, height }) => ({
      name,
      format,
      width,
      height,
    })),
  },
  quotas,
  requestsPerMinute: config.limits.requestsPerMinute,
  logger,
};

export const handler = instrument((event: ApiEvent) => handleApiRequest(deps, event));
