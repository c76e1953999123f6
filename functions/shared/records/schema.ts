/**
 * The single DynamoDB table's key design, shared by the CDK stack and the local stack so both
 * create the same table.
 *
 * - Batch:   pk = `B#<batchId>`, sk = `#BATCH`
 * - Item:    pk = `B#<batchId>`, sk = `I#<itemId>` (item ids are monotonic ULIDs, so a Query on the
 *            batch partition returns the items in request order; images use their imageId)
 * - Index `byImage` (partition `imageId`, sparse: rejected items have none) finds an image by id.
 * - Index `byChecksum` (partition `checksumKey` = `<owner>#<sha256>`, sparse: only ready images
 *   with a known sha256) finds an owner's duplicate.
 */
export const TABLE_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
  ttlAttribute: 'expiresAtEpoch',
  indexes: {
    byImage: { indexName: 'byImage', partitionKey: 'imageId' },
    byChecksum: { indexName: 'byChecksum', partitionKey: 'checksumKey' },
  },
} as const;

export const batchKey = (batchId: string) => ({ pk: `B#${batchId}`, sk: '#BATCH' });
export const itemKey = (batchId: string, itemId: string) => ({ pk: `B#${batchId}`, sk: `I#${itemId}` });
export const ITEM_SK_PREFIX = 'I#';
