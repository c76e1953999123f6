import { Logger } from '@aws-lambda-powertools/logger';
import { createAdapters } from '../shared/adapters.ts';
import { getConfig } from '../shared/config.ts';
import { variantFileNames, variantSpecs } from '../shared/storage/object-keys.ts';
import { type ApiDeps, type ApiEvent, handleApiRequest } from './router.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
const { records, quotas, objects, signer } = createAdapters(config);
const deps: ApiDeps = {
  uploads: {
    records,
    signer,
    quotas,
    uploadBucket: config.uploadBucket,
    uploadPrefix: config.uploadPrefix,
    limits: config.limits,
  },
  status: {
    records,
    signer,
    objects,
    uploadBucket: config.uploadBucket,
    variantsBucket: config.variantsBucket,
    variantFileNames: variantFileNames(variantSpecs(config)),
  },
  quotas,
  requestsPerMinute: config.limits.requestsPerMinute,
  logger: new Logger({ serviceName: 'photo-intake-api' }),
};

export const handler = (event: ApiEvent) => handleApiRequest(deps, event);
