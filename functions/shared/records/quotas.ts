import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Quotas, RateVerdict } from './ports.ts';
import { rateKey, TABLE_SCHEMA } from './schema.ts';
import type { RecordsTable } from './table.ts';

/**
 * Quotas kept in the records table: a fixed-window request counter per owner (one conditional-free
 * ADD per request; the window's row expires through TTL) and a count of open uploads over the
 * sparse `byOpenUpload` index.
 */
export class DynamoQuotas implements Quotas {
  readonly #client: RecordsTable['client'];
  readonly #table: string;
  readonly #now: () => Date;

  constructor(table: RecordsTable) {
    this.#client = table.client;
    this.#table = table.name;
    this.#now = table.now;
  }

  async hit(owner: string, limit: number, windowSeconds: number): Promise<RateVerdict> {
    const nowSeconds = this.#now().getTime() / 1000;
    const windowStart = Math.floor(nowSeconds / windowSeconds) * windowSeconds;
    const { Attributes } = await this.#client.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: rateKey(owner, windowStart),
        UpdateExpression: 'ADD hits :one SET #ttl = if_not_exists(#ttl, :ttl)',
        ExpressionAttributeNames: { '#ttl': TABLE_SCHEMA.ttlAttribute },
        ExpressionAttributeValues: { ':one': 1, ':ttl': windowStart + windowSeconds * 2 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    if (Number(Attributes?.hits ?? 0) <= limit) return { allowed: true };
    return {
      allowed: false,
      retryAfterSeconds: Math.max(1, Math.ceil(windowStart + windowSeconds - nowSeconds)),
    };
  }

  async openUploads(owner: string): Promise<{ count: number; nextExpiry: string | undefined }> {
    const { indexName, partitionKey, sortKey } = TABLE_SCHEMA.indexes.byOpenUpload;
    const query = {
      TableName: this.#table,
      IndexName: indexName,
      KeyConditionExpression: '#owner = :owner AND #expires > :now',
      ExpressionAttributeNames: { '#owner': partitionKey, '#expires': sortKey },
      ExpressionAttributeValues: { ':owner': owner, ':now': this.#now().toISOString() },
    };
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.#client.send(
        new QueryCommand({ ...query, Select: 'COUNT', ExclusiveStartKey: startKey }),
      );
      count += page.Count ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    if (count === 0) return { count, nextExpiry: undefined };
    const first = await this.#client.send(
      new QueryCommand({ ...query, Limit: 1, ProjectionExpression: '#expires' }),
    );
    const nextExpiry = first.Items?.[0]?.[sortKey];
    return { count, nextExpiry: typeof nextExpiry === 'string' ? nextExpiry : undefined };
  }
}
