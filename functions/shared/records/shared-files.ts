import { DeleteCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SharedFileRecords, SharedFiles } from './ports.ts';
import { dedupKey } from './schema.ts';
import { conditionHeld, fromRow, type RecordsTable, type Row } from './table.ts';

/**
 * Dedup rows: `D#<owner>#<sha256>` holds the files of the owner's first ready image with that
 * checksum and how many images use them (see schema.ts).
 */
export class DynamoSharedFiles implements SharedFileRecords {
  readonly #table: RecordsTable;

  constructor(table: RecordsTable) {
    this.#table = table;
  }

  async find(owner: string, sha256s: readonly string[]): Promise<Map<string, SharedFiles>> {
    const unique = [...new Set(sha256s)];
    const rows = await this.#table.getAll(unique.map((sha256) => dedupKey(owner, sha256)));
    return new Map(rows.map((row) => fromDedupRow(row)).map((shared) => [shared.sha256, shared]));
  }

  async offer(owner: string, files: Omit<SharedFiles, 'refs'>): Promise<void> {
    await conditionHeld(
      this.#table.client.send(
        new PutCommand({
          TableName: this.#table.name,
          Item: { ...dedupKey(owner, files.sha256), ...toDedupRow({ ...files, refs: 1 }) },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
  }

  async retain(owner: string, sha256: string, count: number): Promise<boolean> {
    return (await this.#addRefs(owner, sha256, count)) !== undefined;
  }

  async release(owner: string, sha256: string, imageId: string): Promise<number | undefined> {
    // Only a user of these files releases them: the image that made them, or a duplicate of it.
    const remaining = await this.#addRefs(owner, sha256, -1, imageId);
    if (remaining === undefined) return undefined;
    if (remaining <= 0) {
      // Not deleted if retained again in the meantime: the files are in use after all.
      await conditionHeld(
        this.#table.client.send(
          new DeleteCommand({
            TableName: this.#table.name,
            Key: dedupKey(owner, sha256),
            ConditionExpression: 'refs <= :zero',
            ExpressionAttributeValues: { ':zero': 0 },
          }),
        ),
      );
    }
    return remaining;
  }

  /** Moves the reference count; the count after, or undefined when the row (of that image) is gone. */
  async #addRefs(
    owner: string,
    sha256: string,
    by: number,
    sourceImageId?: string,
  ): Promise<number | undefined> {
    let refs: number | undefined;
    await conditionHeld(
      this.#table.client
        .send(
          new UpdateCommand({
            TableName: this.#table.name,
            Key: dedupKey(owner, sha256),
            UpdateExpression: 'ADD refs :by',
            ConditionExpression:
              sourceImageId === undefined
                ? 'attribute_exists(pk)'
                : 'attribute_exists(pk) AND sourceImageId = :image',
            ExpressionAttributeValues: {
              ':by': by,
              ...(sourceImageId === undefined ? {} : { ':image': sourceImageId }),
            },
            ReturnValues: 'UPDATED_NEW',
          }),
        )
        .then(({ Attributes }) => {
          refs = Number(Attributes?.refs ?? 0);
        }),
    );
    return refs;
  }
}

// A dedup row names its image `sourceImageId`: an `imageId` attribute would put it in the byImage index.
function toDedupRow({ imageId, ...rest }: SharedFiles): Row {
  return { ...rest, sourceImageId: imageId };
}

function fromDedupRow(row: Row): SharedFiles {
  const { sourceImageId, ...rest } = fromRow<Row>(row);
  return { ...rest, imageId: sourceImageId } as SharedFiles;
}
