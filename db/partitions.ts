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

/** The month partitions of `table` that end at or before `cutoff` (every row in them is older than it). */
async function monthsEndingBy (db: Kysely<any>, table: string, cutoff: Date): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = ${table}::regclass AND c.relname ~ ${`^${table}_y[0-9]{4}m[0-9]{2}$`}`.execute(db)
  return rows.map((r) => r.name).filter((name) => {
    const [, year, month] = /_y(\d{4})m(\d{2})$/.exec(name) ?? []
    return Date.UTC(Number(year), Number(month), 1) <= cutoff.getTime()
  }).sort()
}

/**
 * Drops the month partitions of `table` that end at or before `cutoff`; the partition holding the cutoff is kept
 * whole. Returns the dropped names.
 */
export async function dropPartitionsBefore (db: Kysely<any>, table: string, cutoff: Date): Promise<string[]> {
  const names = await monthsEndingBy(db, table, cutoff)
  for (const name of names) await sql`DROP TABLE ${sql.id(name)}`.execute(db)
  return names
}

/**
 * Detaches the month partitions of `table` that end at or before `cutoff`: each stays a table of its own, under its
 * name, out of every query on `table`, until the caller is done with its rows. Returns their names.
 */
export async function detachPartitionsBefore (db: Kysely<any>, table: string, cutoff: Date): Promise<string[]> {
  const names = await monthsEndingBy(db, table, cutoff)
  for (const name of names) await sql`ALTER TABLE ${sql.id(table)} DETACH PARTITION ${sql.id(name)}`.execute(db)
  return names
}

/** Month tables of `table` detached and not yet dropped (left by a run that stopped between the two steps). */
export async function detachedMonths (db: Kysely<any>, table: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT relname AS name FROM pg_class
     WHERE relkind = 'r' AND NOT relispartition AND relnamespace = current_schema()::regnamespace
       AND relname ~ ${`^${table}_y[0-9]{4}m[0-9]{2}$`}
     ORDER BY relname`.execute(db)
  return rows.map((r) => r.name)
}
