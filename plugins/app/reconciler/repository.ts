import { sql, type Kysely } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database } from '../../../db/database.js'

export interface ReconciliationRow {
  cursor: Date | null
  last_run_at: Date | null
  last_success_at: Date | null
  last_error: string | null
  last_counts: Record<string, number> | null
  lease_owner: string | null
  lease_until: Date | null
}

/**
 * Takes (or renews) the lease to reconcile: one replica at a time. Returns the cursor, or null when another
 * replica holds a live lease.
 */
export async function acquireLease (db: Kysely<Database>, organizationId: string, name: string, owner: string, leaseMs: number): Promise<{ cursor: Date | null } | null> {
  const { rows } = await sql<{ cursor: Date | null }>`
    INSERT INTO litellm_reconciliation (organization_id, name, lease_owner, lease_until, last_run_at)
    VALUES (${organizationId}, ${name}, ${owner}, now() + make_interval(secs => ${leaseMs / 1000}), now())
    ON CONFLICT (organization_id, name) DO UPDATE
       SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, last_run_at = now()
     WHERE litellm_reconciliation.lease_owner IS NULL OR litellm_reconciliation.lease_owner = ${owner}
        OR litellm_reconciliation.lease_until < now()
    RETURNING cursor`.execute(db)
  return rows.length === 0 ? null : { cursor: rows[0].cursor }
}

/** Moves the cursor after a reconciled window and renews the lease; false when the lease was lost. */
export async function advanceCursor (db: Kysely<Database>, organizationId: string, name: string, owner: string, cursor: Date, leaseMs: number): Promise<boolean> {
  const result = await db.updateTable('litellm_reconciliation')
    .set({ cursor, lease_until: sql`now() + make_interval(secs => ${leaseMs / 1000})` })
    .where('organization_id', '=', organizationId).where('name', '=', name).where('lease_owner', '=', owner).executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

export async function finishRun (db: Kysely<Database>, organizationId: string, name: string, owner: string, outcome: { error: string | null, counts: Record<string, number> }): Promise<void> {
  await db.updateTable('litellm_reconciliation')
    .set({
      lease_owner: null,
      lease_until: null,
      last_error: outcome.error,
      last_counts: JSON.stringify(outcome.counts),
      ...(outcome.error === null ? { last_success_at: sql`now()` } : {})
    })
    .where('organization_id', '=', organizationId).where('name', '=', name).where('lease_owner', '=', owner).execute()
}

export async function readState (db: Kysely<Database>, organizationId: string, name: string): Promise<ReconciliationRow | undefined> {
  return await db.selectFrom('litellm_reconciliation')
    .select(['cursor', 'last_run_at', 'last_success_at', 'last_error', 'last_counts', 'lease_owner', 'lease_until'])
    .where('organization_id', '=', organizationId).where('name', '=', name).executeTakeFirst()
}

/**
 * Whether LiteLLM's Lago callback delivered calls that started in [from, to): its events carry no LiteLLM id (a
 * fresh transaction_id per callback run, no call id), so a spend-log row of the same call cannot be recognised,
 * and reconciling that window would bill those calls twice. Such events carry no timestamp: they are received
 * when the call ends, at most `callMs` (the reconciliation lag) after it started.
 */
export async function lagoCallbackEventsFor (db: Kysely<Database>, from: Date, to: Date, callMs: number, organizationId: string): Promise<boolean> {
  let query = db.selectFrom('litellm_usage_events').select('id')
  // default's LiteLLM may feed every organization (routes), except those with a LiteLLM of their own: their callback
  // events come from that one and say nothing of default's windows.
  query = organizationId === DEFAULT_ORGANIZATION_ID
    ? query.where('organization_id', 'not in', db.selectFrom('organizations').select('id').where('litellm_url', 'is not', null).where('id', '<>', DEFAULT_ORGANIZATION_ID))
    : query.where('organization_id', '=', organizationId)
  const row = await query
    .where('source', '=', 'lago_callback')
    .where('received_at', '>=', new Date(from.getTime() - 60_000))
    .where('received_at', '<', new Date(to.getTime() + callMs))
    .limit(1).executeTakeFirst()
  return row !== undefined
}
