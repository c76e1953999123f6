import { Logger } from '@aws-lambda-powertools/logger';
import { createAdapters } from '../shared/adapters.ts';
import { getConfig } from '../shared/config.ts';
import { type ApiDeps, type ApiEvent, handleApiRequest } from './router.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
const { records, moves, sharedFiles, quotas, objects, signer } = createAdapters(config);
const deps: ApiDeps = {
  uploads: {
    batches: records,
    sharedFiles,
    signer,
    quotas,
    uploadBucket: config.uploadBucket,
    uploadPrefix: config.uploadPrefix,
    limits: config.limits,
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
    specs: config.processing.variants,
    uploadUrlTtlSeconds: config.limits.uploadUrlTtlSeconds,
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
  logger: new Logger({ serviceName: 'photo-intake-api' }),
};

export const handler = (event: ApiEvent) => handleApiRequest(deps, event);
