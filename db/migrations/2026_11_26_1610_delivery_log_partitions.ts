import { sql, type Kysely } from 'kysely'

// webhook_delivery_logs becomes partitioned by month on created_at, so that retention (RETENTION_DAYS) drops whole
// months instead of deleting rows. The table is rebuilt as a partitioned copy of itself (LIKE: whatever columns it
// has by then), every row copied with its id, then the old table is dropped. A unique key of a partitioned table must
// hold the partition key: the primary key becomes (id, created_at); ids still come from one sequence, so an id
// stays unique. Month partitions cover the existing rows and two months ahead (the service creates the next ones);
// a default partition takes anything outside them rather than failing an insert.
const TABLE = 'webhook_delivery_logs'

const monthStart = (at: Date, months = 0): Date => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + months, 1))
const partitionName = (month: Date): string => `${TABLE}_y${month.getUTCFullYear()}m${String(month.getUTCMonth() + 1).padStart(2, '0')}`

export async function up (db: Kysely<any>): Promise<void> {
  await sql`LOCK TABLE webhook_delivery_logs IN ACCESS EXCLUSIVE MODE`.execute(db)
  await sql`ALTER TABLE webhook_delivery_logs RENAME TO webhook_delivery_logs_unpartitioned`.execute(db)
  await sql`ALTER INDEX webhook_delivery_logs_pkey RENAME TO webhook_delivery_logs_unpartitioned_pkey`.execute(db)
  await sql`ALTER INDEX webhook_delivery_logs_created_at_idx RENAME TO webhook_delivery_logs_unpartitioned_created_at_idx`.execute(db)
  await sql`CREATE TABLE webhook_delivery_logs (LIKE webhook_delivery_logs_unpartitioned INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)
              PARTITION BY RANGE (created_at)`.execute(db)
  await sql`ALTER TABLE webhook_delivery_logs ADD PRIMARY KEY (id, created_at)`.execute(db)
  await sql`CREATE INDEX webhook_delivery_logs_created_at_idx ON webhook_delivery_logs (created_at)`.execute(db)
  await sql`CREATE TABLE webhook_delivery_logs_default PARTITION OF webhook_delivery_logs DEFAULT`.execute(db)

  const { rows: [range] } = await sql<{ oldest: Date | null }>`SELECT min(created_at) AS oldest FROM webhook_delivery_logs_unpartitioned`.execute(db)
  const now = new Date()
  for (let m = monthStart(range.oldest ?? now); m.getTime() <= monthStart(now, 2).getTime(); m = monthStart(m, 1)) {
    await sql`CREATE TABLE ${sql.id(partitionName(m))} PARTITION OF webhook_delivery_logs
                FOR VALUES FROM (${sql.lit(m.toISOString())}) TO (${sql.lit(monthStart(m, 1).toISOString())})`.execute(db)
  }
  await sql`INSERT INTO webhook_delivery_logs OVERRIDING SYSTEM VALUE SELECT * FROM webhook_delivery_logs_unpartitioned`.execute(db)
  await sql`SELECT setval(pg_get_serial_sequence('webhook_delivery_logs', 'id'), coalesce((SELECT max(id) FROM webhook_delivery_logs), 0) + 1, false)`.execute(db)
  await sql`DROP TABLE webhook_delivery_logs_unpartitioned`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE webhook_delivery_logs RENAME TO webhook_delivery_logs_partitioned`.execute(db)
  await sql`ALTER INDEX webhook_delivery_logs_pkey RENAME TO webhook_delivery_logs_partitioned_pkey`.execute(db)
  await sql`ALTER INDEX webhook_delivery_logs_created_at_idx RENAME TO webhook_delivery_logs_partitioned_created_at_idx`.execute(db)
  await sql`CREATE TABLE webhook_delivery_logs (LIKE webhook_delivery_logs_partitioned INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)`.execute(db)
  await sql`ALTER TABLE webhook_delivery_logs ADD PRIMARY KEY (id)`.execute(db)
  await sql`CREATE INDEX webhook_delivery_logs_created_at_idx ON webhook_delivery_logs (created_at)`.execute(db)
  await sql`INSERT INTO webhook_delivery_logs OVERRIDING SYSTEM VALUE SELECT * FROM webhook_delivery_logs_partitioned`.execute(db)
  await sql`SELECT setval(pg_get_serial_sequence('webhook_delivery_logs', 'id'), coalesce((SELECT max(id) FROM webhook_delivery_logs), 0) + 1, false)`.execute(db)
  await sql`DROP TABLE webhook_delivery_logs_partitioned`.execute(db)
}
