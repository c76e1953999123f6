/**
 * The single DynamoDB table's key design, shared by the CDK stack and the local stack so both
 * create the same table.
 *
 * - Batch:   pk = `B#<batchId>`, sk = `#BATCH`
 * - Item:    pk = `B#<batchId>`, sk = `I#<itemId>` (item ids are monotonic ULIDs, so a Query on the
 *            batch partition returns the items in request order; images use their imageId)
 * - Dedup:   pk = `D#<owner>#<sha256>`, sk = `#DEDUP`: the files of an owner's ready image with
 *            that checksum, and how many images share them
 * - Rate:    pk = `R#<owner>`, sk = `<window start, epoch seconds>`: requests in that window
 * - Outbox:  pk = `O#<shard>`, sk = `<eventId>`: an event written in the same transaction as the
 *            status move it tells of, until it is handed to the events port (fate/outbox.ts)
 * - Index `byImage` (partition `imageId`; sparse, rejected items have none) finds an image's key by
 *   id; KEYS_ONLY, so that no status move rewrites it (the item itself is then read by key).
 * - Index `byOpenUpload` (partition `openOwner`, sort `uploadExpiresAt`; sparse, only images not
 *   yet final carry `openOwner`) counts an owner's unfinished uploads for the quota.
 * - Index `byOpenAge` (partition `openShard`, sort `updatedAt`; sparse, only images not yet final)
 *   lets the reconciler find work that stopped moving, across owners. `OPEN_SHARDS` partitions
 *   spread the index's writes.
 */
export const TABLE_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
  ttlAttribute: 'expiresAtEpoch',
  indexes: {
    byImage: { indexName: 'byImage', partitionKey: 'imageId', projection: 'KEYS_ONLY' },
    byOpenUpload: {
      indexName: 'byOpenUpload',
      partitionKey: 'openOwner',
      sortKey: 'uploadExpiresAt',
      projection: 'KEYS_ONLY',
    },
    byOpenAge: { indexName: 'byOpenAge', partitionKey: 'openShard', sortKey: 'updatedAt', projection: 'ALL' },
  },
} as const;

export const OPEN_SHARDS = 8;

/** The byOpenAge partition of an image: a stable spread by id. */
export function openShard(imageId: string): string {
  let hash = 0;
  for (let i = 0; i < imageId.length; i++) hash = (hash * 31 + imageId.charCodeAt(i)) >>> 0;
  return String(hash % OPEN_SHARDS);
}

export const batchKey = (batchId: string) => ({ pk: `B#${batchId}`, sk: '#BATCH' });
/** The batch id of a batch partition's key (`B#<batchId>`). */
export const batchIdOf = (pk: string) => pk.slice('B#'.length);
export const itemKey = (batchId: string, itemId: string) => ({ pk: `B#${batchId}`, sk: `I#${itemId}` });
export const dedupKey = (owner: string, sha256: string) => ({ pk: `D#${owner}#${sha256}`, sk: '#DEDUP' });
export const rateKey = (owner: string, windowStart: number) => ({
  pk: `R#${owner}`,
  sk: String(windowStart),
});
export const ITEM_SK_PREFIX = 'I#';
export const outboxKey = (eventId: string) => ({ pk: `O#${openShard(eventId)}`, sk: eventId });
export const outboxPartition = (shard: number) => `O#${shard}`;
