import { monotonicFactory } from 'ulid';

/**
 * Ids are ULIDs: unique, URL-safe, and increasing within a process, so items created in one
 * request sort in request order.
 */
export const newId: () => string = monotonicFactory();

const ID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;
export const isId = (value: string) => ID_PATTERN.test(value);
