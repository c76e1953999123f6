/** The database kept refusing writes (throttling) after every allowed attempt; worth retrying later. */
export class RecordsWriteError extends Error {
  override readonly name = 'RecordsWriteError';
  readonly code = 'RecordsWriteError';
}
