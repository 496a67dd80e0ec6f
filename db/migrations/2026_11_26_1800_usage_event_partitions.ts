import { sql, type Kysely } from 'kysely'

// litellm_usage_events becomes partitioned by month on received_at, so that retention (RETENTION_DAYS) drops whole
// months of forwarded events instead of deleting rows, and no index grows past a month of traffic.
//
// A unique key of a partitioned table must hold the partition key, but a request_id must stay unique in its
// organization for ever (a resend a year later is still a resend). The dedupe key therefore moves to a narrow,
// unpartitioned table, usage_event_keys: (organization_id, request_id) → the event's id and billing fingerprint.
// Ingestion inserts the key first (ON CONFLICT DO NOTHING) and the event only for a key it created; lookups by
// request_id go through it. Keys outlive retention on purpose (about 150 bytes per event).
//
// The table is rebuilt as a partitioned copy of itself (LIKE: whatever columns it has by then), every row copied with
// its id; its indexes are recreated from their own definitions (whatever they are by then) except the unique key,
// and its counting triggers are moved over. The primary key becomes (id, received_at); ids still come from one
// sequence. Month partitions cover the existing rows and two months ahead (the service creates the next ones); a
// default partition takes anything outside them rather than failing an insert.
//
// The received_at index becomes a BRIN index: received_at is the time of insertion, so the heap is in its order and
// a BRIN index answers "the last minute / day" as well, for a fraction of the upkeep of a B-tree at ingestion. It
// also leaves the primary key as the one index the forwarder can look a batch of events up by (see PIN_INDEX_PLAN in
// plugins/app/forwarder/repository.ts): a B-tree on received_at let PostgreSQL read every event stored in the
// same group commit as one of them.
const TABLE = 'litellm_usage_events'
const OLD = 'litellm_usage_events_unpartitioned'
const UNIQUE_KEY = 'litellm_usage_events_organization_request_id_key'
const RECEIVED_AT_INDEX = 'litellm_usage_events_received_at_idx'

const monthStart = (at: Date, months = 0): Date => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + months, 1))
const partitionName = (month: Date): string => `${TABLE}_y${month.getUTCFullYear()}m${String(month.getUTCMonth() + 1).padStart(2, '0')}`

interface IndexDef { name: string, def: string, constraint: string | null }

/** The table's indexes with their CREATE statements, and the constraint each backs (primary key, unique) if any. */
async function indexesOf (db: Kysely<any>, table: string): Promise<IndexDef[]> {
  const { rows } = await sql<IndexDef>`
    SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS def, c.conname AS constraint
      FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
      LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
     WHERE x.indrelid = ${table}::regclass ORDER BY i.relname`.execute(db)
  return rows
}

async function dropIndexes (db: Kysely<any>, table: string, indexes: IndexDef[]): Promise<void> {
  for (const index of indexes) {
    if (index.constraint !== null) await sql`ALTER TABLE ${sql.id(table)} DROP CONSTRAINT ${sql.id(index.constraint)}`.execute(db)
    else await sql`DROP INDEX ${sql.id(index.name)}`.execute(db)
  }
}

async function moveCountingTriggers (db: Kysely<any>, from: string, to: string): Promise<void> {
  for (const op of ['insert', 'update', 'delete']) await sql`DROP TRIGGER ${sql.id(`usage_event_counts_${op}`)} ON ${sql.id(from)}`.execute(db)
  await sql`CREATE TRIGGER usage_event_counts_insert AFTER INSERT ON ${sql.id(to)}
              REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_event_counts_apply()`.execute(db)
  await sql`CREATE TRIGGER usage_event_counts_update AFTER UPDATE ON ${sql.id(to)}
              REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_event_counts_apply()`.execute(db)
  await sql`CREATE TRIGGER usage_event_counts_delete AFTER DELETE ON ${sql.id(to)}
              REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_event_counts_apply()`.execute(db)
}

/** Rebuilds `TABLE` as `create` makes it (from `OLD`), copies every row, and gives it the old table's other indexes. */
async function rebuild (db: Kysely<any>, create: (db: Kysely<any>) => Promise<void>, keep: (index: IndexDef) => boolean): Promise<void> {
  await sql`LOCK TABLE ${sql.id(TABLE)} IN ACCESS EXCLUSIVE MODE`.execute(db)
  const indexes = await indexesOf(db, TABLE)
  await sql`ALTER TABLE ${sql.id(TABLE)} RENAME TO ${sql.id(OLD)}`.execute(db)
  // Index names are schema-wide: free them for the new table (the old one is dropped below anyway).
  await dropIndexes(db, OLD, indexes)
  await create(db)
  // Rows are copied before the triggers move: the counts in usage_event_counts already hold them.
  await sql`INSERT INTO ${sql.id(TABLE)} OVERRIDING SYSTEM VALUE SELECT * FROM ${sql.id(OLD)}`.execute(db)
  for (const index of indexes) if (keep(index)) await sql.raw(index.def).execute(db)
  await sql`ALTER TABLE ${sql.id(TABLE)} ADD CONSTRAINT litellm_usage_events_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES organizations (id)`.execute(db)
  await moveCountingTriggers(db, OLD, TABLE)
  const { rows: [{ sequence }] } = await sql<{ sequence: string }>`SELECT pg_get_serial_sequence(${TABLE}, 'id') AS sequence`.execute(db)
  await sql`SELECT setval(${sequence}, coalesce((SELECT max(id) FROM ${sql.id(TABLE)}), 0) + 1, false)`.execute(db)
  await sql`DROP TABLE ${sql.id(OLD)}`.execute(db)
  // The copy's identity sequence got a suffixed name while the old one existed: give it the usual name back.
  await sql.raw(`ALTER SEQUENCE ${sequence} RENAME TO ${TABLE}_id_seq`).execute(db)
}

export async function up (db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE usage_event_keys (
              organization_id text NOT NULL,
              request_id text NOT NULL,
              event_id bigint NOT NULL,
              fingerprint text NOT NULL,
              PRIMARY KEY (organization_id, request_id)
            )`.execute(db)
  await rebuild(db, async (db) => {
    await sql`CREATE TABLE ${sql.id(TABLE)} (LIKE ${sql.id(OLD)} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)
                PARTITION BY RANGE (received_at)`.execute(db)
    await sql`ALTER TABLE ${sql.id(TABLE)} ADD PRIMARY KEY (id, received_at)`.execute(db)
    await sql`CREATE TABLE ${sql.id(`${TABLE}_default`)} PARTITION OF ${sql.id(TABLE)} DEFAULT`.execute(db)
    const { rows: [range] } = await sql<{ oldest: Date | null }>`SELECT min(received_at) AS oldest FROM ${sql.id(OLD)}`.execute(db)
    const now = new Date()
    for (let m = monthStart(range.oldest ?? now); m.getTime() <= monthStart(now, 2).getTime(); m = monthStart(m, 1)) {
      await sql`CREATE TABLE ${sql.id(partitionName(m))} PARTITION OF ${sql.id(TABLE)}
                  FOR VALUES FROM (${sql.lit(m.toISOString())}) TO (${sql.lit(monthStart(m, 1).toISOString())})`.execute(db)
    }
    await sql`INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint)
                SELECT organization_id, request_id, id, fingerprint FROM ${sql.id(OLD)}`.execute(db)
  }, (index) => index.constraint === null && index.name !== RECEIVED_AT_INDEX)
  await sql`CREATE INDEX ${sql.id(RECEIVED_AT_INDEX)} ON ${sql.id(TABLE)} USING brin (received_at)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await rebuild(db, async (db) => {
    await sql`CREATE TABLE ${sql.id(TABLE)} (LIKE ${sql.id(OLD)} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)`.execute(db)
    await sql`ALTER TABLE ${sql.id(TABLE)} ADD PRIMARY KEY (id)`.execute(db)
    await sql`ALTER TABLE ${sql.id(TABLE)} ADD CONSTRAINT ${sql.id(UNIQUE_KEY)} UNIQUE (organization_id, request_id)`.execute(db)
  }, (index) => index.constraint === null && index.name !== RECEIVED_AT_INDEX)
  await sql`CREATE INDEX ${sql.id(RECEIVED_AT_INDEX)} ON ${sql.id(TABLE)} (received_at)`.execute(db)
  await sql`DROP TABLE usage_event_keys`.execute(db)
}
