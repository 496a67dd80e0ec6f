import { createHash } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
import type { SpendAlert } from '../litellm/spend-alert.js'

/** Appends a spend_tracked alert to the ledger. The body has no id: each delivery is an entry, its hash kept. */
export async function recordSpendAlert (db: Kysely<Database>, alert: SpendAlert, rawBody: string): Promise<number> {
  const row = await db.insertInto('litellm_spend_ledger').values({
    customer_id: alert.customerId,
    spend_usd: alert.spendUsd,
    api_key_hash: alert.apiKeyHash,
    key_alias: alert.keyAlias,
    user_id: alert.userId,
    team_id: alert.teamId,
    event_group: alert.eventGroup,
    body_sha256: createHash('sha256').update(rawBody).digest('hex')
  }).returning('id').executeTakeFirstOrThrow()
  return row.id
}

export interface LedgerTotal { customer_id: string | null, entries: number, spend_usd: string, first_at: Date, last_at: Date }

/** One organization's ledger per customer over [from, to). */
export async function ledgerTotals (db: Kysely<Database>, organization: string, range: { from?: Date, to?: Date, customerId?: string }): Promise<LedgerTotal[]> {
  const { rows } = await sql<LedgerTotal>`
    SELECT customer_id, count(*)::int AS entries, sum(spend_usd)::text AS spend_usd, min(received_at) AS first_at, max(received_at) AS last_at
      FROM litellm_spend_ledger
     WHERE organization_id = ${organization}
       ${range.from !== undefined ? sql`AND received_at >= ${range.from}` : sql``}
       ${range.to !== undefined ? sql`AND received_at < ${range.to}` : sql``}
       ${range.customerId !== undefined ? sql`AND customer_id = ${range.customerId}` : sql``}
     GROUP BY customer_id ORDER BY customer_id NULLS LAST`.execute(db)
  return rows
}
