import { createHash } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
import { exactCost, isObject, text } from './fields.js'

/** A spend_tracked alert of LiteLLM's alerting webhook: one customer call's cost. */
export interface SpendAlert {
  customerId: string | null
  spendUsd: string
  apiKeyHash: string | null
  keyAlias: string | null
  userId: string | null
  teamId: string | null
  eventGroup: string | null
}

/**
 * Reads a LiteLLM WebhookEvent. Only spend_tracked carries usage (its `spend` is that request's cost, not a
 * running total); the budget and management events (budget_crossed, key_created...) are acknowledged and not kept.
 * `event_group` was "customer" in old builds and is "end_user" in new ones.
 */
export function readSpendAlert (body: unknown): { alert: SpendAlert } | { ignored: string } {
  if (!isObject(body)) return { ignored: 'not a LiteLLM webhook event' }
  const event = text(body.event, 64)
  if (event !== 'spend_tracked') return { ignored: event === undefined ? 'no event type' : `${event} is not a spend event` }
  return {
    alert: {
      customerId: text(body.customer_id) ?? null,
      spendUsd: exactCost(body.spend, 'spend').cost,
      apiKeyHash: text(body.token) ?? null,
      keyAlias: text(body.key_alias) ?? null,
      userId: text(body.user_id) ?? null,
      teamId: text(body.team_id) ?? null,
      eventGroup: text(body.event_group, 64) ?? null
    }
  }
}

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

/** The ledger per customer over [from, to). */
export async function ledgerTotals (db: Kysely<Database>, range: { from?: Date, to?: Date, customerId?: string }): Promise<LedgerTotal[]> {
  const { rows } = await sql<LedgerTotal>`
    SELECT customer_id, count(*)::int AS entries, sum(spend_usd)::text AS spend_usd, min(received_at) AS first_at, max(received_at) AS last_at
      FROM litellm_spend_ledger
     WHERE true
       ${range.from !== undefined ? sql`AND received_at >= ${range.from}` : sql``}
       ${range.to !== undefined ? sql`AND received_at < ${range.to}` : sql``}
       ${range.customerId !== undefined ? sql`AND customer_id = ${range.customerId}` : sql``}
     GROUP BY customer_id ORDER BY customer_id NULLS LAST`.execute(db)
  return rows
}
