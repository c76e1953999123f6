import { createAdapters } from '../shared/adapters.ts';
import { getConfig } from '../shared/config.ts';
import { observability } from '../shared/observability.ts';
import { type ApiEvent, apiDepsFrom, handleApiRequest } from './router.ts';

// Built once per process: configuration, SDK clients and adapters.
const config = getConfig();
const { logger, metrics, instrument } = observability('api');
const deps = apiDepsFrom(config, createAdapters(config), { logger, metrics });

export const handler = instrument((event: ApiEvent) => handleApiRequest(deps, event));
