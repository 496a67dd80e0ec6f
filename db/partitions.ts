import { sql, type Kysely } from 'kysely'

// Monthly range partitions (UTC months) of a table partitioned by a timestamptz column: the names, the ranges, the
// months to create ahead, and which partitions lie wholly before a retention cutoff (dropped whole instead of
// deleting rows).

/** The first instant (UTC) of the month holding `at`, shifted by `months`. */
export function monthStart (at: Date, months = 0): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + months, 1))
}

/** `webhook_delivery_logs_y2026m11` for November 2026. */
export function partitionName (table: string, month: Date): string {
  return `${table}_y${month.getUTCFullYear()}m${String(month.getUTCMonth() + 1).padStart(2, '0')}`
}

/** The month starts from `from`'s month through `to`'s month, inclusive. */
export function monthsBetween (from: Date, to: Date): Date[] {
  const months: Date[] = []
  for (let m = monthStart(from); m.getTime() <= monthStart(to).getTime(); m = monthStart(m, 1)) months.push(m)
  return months
}

/** Creates the month partitions of `table` from `from`'s month through `ahead` months after `now` (existing ones kept). */
export async function ensureMonthlyPartitions (db: Kysely<any>, table: string, now: Date, ahead = 2, from: Date = now): Promise<string[]> {
  const created: string[] = []
  for (const month of monthsBetween(from, monthStart(now, ahead))) {
    const name = partitionName(table, month)
    const { rows } = await sql<{ exists: boolean }>`SELECT to_regclass(${name}) IS NOT NULL AS exists`.execute(db)
    if (rows[0].exists) continue
    await sql`CREATE TABLE IF NOT EXISTS ${sql.id(name)} PARTITION OF ${sql.id(table)}
                FOR VALUES FROM (${sql.lit(month.toISOString())}) TO (${sql.lit(monthStart(month, 1).toISOString())})`.execute(db)
    created.push(name)
  }
  return created
}

/**
 * Drops the month partitions of `table` that end at or before `cutoff` (every row in them is older than it);
 * the partition holding the cutoff is kept whole. Returns the dropped names.
 */
export async function dropPartitionsBefore (db: Kysely<any>, table: string, cutoff: Date): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = ${table}::regclass AND c.relname ~ ${`^${table}_y[0-9]{4}m[0-9]{2}$`}`.execute(db)
  const dropped: string[] = []
  for (const { name } of rows) {
    const [, year, month] = /_y(\d{4})m(\d{2})$/.exec(name) ?? []
    const end = new Date(Date.UTC(Number(year), Number(month), 1))
    if (end.getTime() > cutoff.getTime()) continue
    await sql`DROP TABLE ${sql.id(name)}`.execute(db)
    dropped.push(name)
  }
  return dropped.sort()
}
