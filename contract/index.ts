/** The external contract: schemas, inferred types, statuses, error codes and routes. */
export * from './routes.ts';
export * from './schemas.ts';
