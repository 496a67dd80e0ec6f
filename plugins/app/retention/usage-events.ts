import { sql, type Kysely } from 'kysely'
import type { Database, UsageEventStatus } from '../../../db/database.js'

export const USAGE_EVENTS = 'litellm_usage_events'

/** Taken (transaction-scoped, until `trx` ends) by whoever changes partitions: one replica at a time. */
export async function lockPartitions (trx: Kysely<Database>): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended('retention:partitions', 0))`.execute(trx)
}

/**
 * The events retention may remove: Lago has them (forwarded) or they are not billable (a failed LiteLLM call). Any
 * other status still needs the service or a person (pending, failed, unmapped, dead, lago_error), whatever its age.
 */
export const RETIRABLE_STATUSES: readonly UsageEventStatus[] = ['forwarded', 'not_billable']

export interface RetiredMonth { month: string, removed: number, kept: number }

/**
 * Finishes a month of events already detached from litellm_usage_events: its events that retention may not remove
 * go back into the table (the default partition takes them, their month being gone), the rest are dropped with the
 * table. usage_event_counts loses the month's rows (a DROP fires no trigger) and gets the kept ones back through
 * their INSERT's trigger. One transaction: a crash leaves the detached month whole, finished by the next run.
 * Dedupe keys stay (usage_event_keys): a resend of a removed event is still a resend.
 */
export async function retireDetachedMonth (db: Kysely<Database>, month: string): Promise<RetiredMonth> {
  return await db.transaction().execute(async (trx) => {
    await lockPartitions(trx)
    // Another replica may have finished it while this one waited.
    const { rows: [{ exists }] } = await sql<{ exists: boolean }>`SELECT to_regclass(${month}) IS NOT NULL AS exists`.execute(trx)
    if (!exists) return { month, removed: 0, kept: 0 }
    const table = sql.id(month)
    const { rows: [{ total }] } = await sql<{ total: number }>`SELECT count(*)::int AS total FROM ${table}`.execute(trx)
    // The month's organizations that still exist, locked until this transaction ends (as the events' inserts lock
    // theirs: events have no foreign key). A purge that ran while the month was detached could not see its events:
    // theirs are dropped with the table, neither put back nor counted.
    const { rows: organizations } = await sql<{ id: string }>`
      SELECT id FROM organizations WHERE id IN (SELECT organization_id FROM ${table}) ORDER BY id FOR KEY SHARE`.execute(trx)
    const existing = organizations.map((o) => o.id)
    await sql`
      INSERT INTO usage_event_counts (organization_id, source, status, shard, events)
      SELECT organization_id, source, status, 0, -count(*) FROM ${table} WHERE organization_id = ANY(${existing}::text[])
       GROUP BY organization_id, source, status ORDER BY organization_id, source, status
      ON CONFLICT (organization_id, source, status, shard) DO UPDATE SET events = usage_event_counts.events + excluded.events`.execute(trx)
    const { numAffectedRows } = await sql`
      INSERT INTO litellm_usage_events OVERRIDING SYSTEM VALUE
      SELECT * FROM ${table} WHERE status <> ALL(${RETIRABLE_STATUSES}::text[]) AND organization_id = ANY(${existing}::text[])`.execute(trx)
    await sql`DROP TABLE ${table}`.execute(trx)
    const kept = Number(numAffectedRows ?? 0)
    return { month, removed: total - kept, kept }
  })
}

/**
 * Removes the retirable events kept earlier in the default partition (they were not done when their month was
 * retired) once they are, row by row: the only rows before `before` (a month start) left in the table.
 */
export async function removeRetiredLeftovers (db: Kysely<Database>, before: Date): Promise<number> {
  const { numAffectedRows } = await sql`
    DELETE FROM litellm_usage_events WHERE received_at < ${before} AND status = ANY(${RETIRABLE_STATUSES}::text[])`.execute(db)
  return Number(numAffectedRows ?? 0)
}

/** Hourly counts older than this are deleted by retention (the triggers count the last 25 hours only). */
const HOURLY_COUNTS_KEPT_HOURS = 26

/** Deletes the hourly counts no 24-hour window reads any more; the number of rows deleted. */
export async function deleteOldHourlyCounts (db: Kysely<Database>): Promise<number> {
  const { numAffectedRows } = await sql`DELETE FROM usage_event_hourly_counts
     WHERE hour < now() - make_interval(hours => ${HOURLY_COUNTS_KEPT_HOURS})`.execute(db)
  return Number(numAffectedRows ?? 0)
}
