import { sql, type Kysely } from 'kysely'
import type { EventInputObject } from '../lago/types.js'
import type { Database, NewDeliveryAttempt } from '../../../db/database.js'
import { PIN_INDEX_PLAN } from '../../../db/plans.js'
import { NO_CUSTOMER } from '../usage-events/normalize.js'
import { lagoEventBody, type UsageEventForLago } from './lago-event.js'

/** A usage event claimed by one forwarder worker; the claim token proves ownership when settling. */
export interface ClaimedEvent {
  id: number
  requestId: string
  customerExternalId: string
  claimToken: number
  /**
   * Its partition key as PostgreSQL writes it (to the microsecond: a Date keeps milliseconds), so that settling
   * finds each event in its own month instead of probing every month's index.
   */
  receivedAt: string
  attempts: number
  /** Null until the event's Lago subscription is known; then frozen for every send. */
  body: EventInputObject | null
  /** What the body is built from, once its subscription is known. */
  event: UsageEventForLago
}

type Claim = Pick<ClaimedEvent, 'id' | 'claimToken' | 'receivedAt'>

type ClaimedRow = UsageEventForLago & { id: number, customer_external_id: string, claim_token: number, received_at: string, attempts: number, lago_payload: EventInputObject | null }

const CLAIMED_COLUMNS = sql`e.id, e.request_id, e.customer_external_id, e.claim_token, e.received_at::text AS received_at, e.attempts, e.lago_payload,
  e."timestamp", e.cost_usd, e.tokens_input, e.tokens_output, e.total_tokens, e.model, e.provider`

const toClaimed = (r: ClaimedRow): ClaimedEvent => ({
  id: r.id,
  requestId: r.request_id,
  customerExternalId: r.customer_external_id,
  claimToken: r.claim_token,
  receivedAt: r.received_at,
  attempts: r.attempts,
  body: r.lago_payload,
  event: {
    request_id: r.request_id,
    timestamp: r.timestamp,
    cost_usd: r.cost_usd,
    tokens_input: r.tokens_input,
    tokens_output: r.tokens_output,
    total_tokens: r.total_tokens,
    model: r.model,
    provider: r.provider
  }
})

/**
 * These events, by primary key: `e.id = ANY(...) AND e.received_at = ANY(...)` (the table is aliased e). With the
 * partition keys PostgreSQL reads only the months that hold them; in a PIN_INDEX_PLAN transaction, the primary key
 * is the one index it can read them by.
 */
const byKey = (events: ReadonlyArray<{ id: number, receivedAt: string }>) =>
  sql`e.id = ANY(${events.map((c) => c.id)}::bigint[]) AND e.received_at = ANY(${events.map((c) => c.receivedAt)}::timestamptz[])`

/** Only rows this worker still owns (its claim token) are settled: these events, if still this claim's. */
const owned = (claims: Claim[]) =>
  sql`${byKey(claims)} AND (e.id, e.claim_token) IN (SELECT * FROM unnest(${claims.map((c) => c.id)}::bigint[], ${claims.map((c) => c.claimToken)}::bigint[]))`

/**
 * One organization's oldest due events, locked (the claim's first step; exported so that its plan can be checked),
 * with what the claim returns of them. Its shape matches the partial index on (organization_id, id) WHERE status IN
 * ('pending', 'failed').
 */
export const dueEvents = (organization: string, limit: number) => sql`
  SELECT ${CLAIMED_COLUMNS}, e.external_subscription_id FROM litellm_usage_events e
   WHERE e.organization_id = ${organization} AND e.status IN ('pending', 'failed') AND e.next_attempt_at <= now()
     AND (e.lease_expires_at IS NULL OR e.lease_expires_at < now())
   ORDER BY e.id
   LIMIT ${limit}
   FOR UPDATE SKIP LOCKED`

/** Runs a claim or a settle in a transaction of its own, with PIN_INDEX_PLAN. */
async function pinned<T> (db: Kysely<Database>, run: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  return await db.transaction().execute(async (trx) => {
    await PIN_INDEX_PLAN.execute(trx)
    return await run(trx)
  })
}

/**
 * Claims one organization's oldest due events, skipping rows other workers hold (FOR UPDATE SKIP LOCKED) and
 * events under a live lease, so replicas never claim the same event at once. An event whose customer (of the same
 * organization) has a known subscription gets its Lago body frozen in the same UPDATE as its claim: one row version
 * per event instead of two (the claim, then the freeze), which the drain is bound by. The bodies are built in
 * TypeScript between the locking SELECT and the UPDATE, in one short transaction with no network call inside. The
 * scan follows the partial index on (organization_id, id) of unsent events, so another organization's backlog
 * costs it nothing.
 */
export async function claimDueEvents (db: Kysely<Database>, opts: { organization: string, worker: string, limit: number, leaseMs: number, metricCode: string }): Promise<ClaimedEvent[]> {
  return await pinned(db, async (trx) => {
    const { rows: due } = await sql<ClaimedRow & { known_subscription: string | null }>`
      WITH e AS (${dueEvents(opts.organization, opts.limit)})
      SELECT e.*, coalesce(e.external_subscription_id, c.subscription_external_id) AS known_subscription
        FROM e LEFT JOIN customers c ON c.organization_id = ${opts.organization} AND c.external_id = e.customer_external_id`.execute(trx)
    if (due.length === 0) return []
    const subscriptions: Array<string | null> = []
    const bodies: Array<string | null> = []
    for (const r of due) {
      const freeze = r.lago_payload === null && r.known_subscription !== null
      subscriptions.push(freeze ? r.known_subscription : null)
      bodies.push(freeze ? JSON.stringify(lagoEventBody(toClaimed(r).event, r.known_subscription as string, opts.metricCode)) : null)
    }
    const { rows } = await sql<ClaimedRow>`
      UPDATE litellm_usage_events e
         SET claim_token = e.claim_token + 1,
             claimed_by = ${opts.worker},
             lease_expires_at = now() + make_interval(secs => ${opts.leaseMs / 1000}),
             external_subscription_id = coalesce(e.external_subscription_id, s.subscription),
             lago_payload = coalesce(e.lago_payload, s.body)
        FROM unnest(${due.map((r) => r.id)}::bigint[], ${subscriptions}::text[], ${bodies}::jsonb[]) AS s(id, subscription, body)
       WHERE e.id = s.id AND ${byKey(due.map((r) => ({ id: r.id, receivedAt: r.received_at })))}
      RETURNING ${CLAIMED_COLUMNS}`.execute(trx)
    return rows.map(toClaimed).sort((a, b) => a.id - b.id)
  })
}

/**
 * Freezes the Lago body of claimed events now that their subscription is known (a body already frozen stays as
 * it is); returns them with it.
 */
export async function freezeBodies (db: Kysely<Database>, claims: ClaimedEvent[], subscriptionOf: Map<number, string>, metricCode: string): Promise<ClaimedEvent[]> {
  const items = claims.filter((c) => subscriptionOf.has(c.id))
  if (items.length === 0) return []
  const subscriptions = items.map((c) => subscriptionOf.get(c.id) as string)
  const bodies = items.map((c, i) => JSON.stringify(lagoEventBody(c.event, subscriptions[i], metricCode)))
  const { rows } = await pinned(db, async (trx) => await sql<ClaimedRow>`
    UPDATE litellm_usage_events e
       SET external_subscription_id = coalesce(e.external_subscription_id, s.subscription),
           lago_payload = coalesce(e.lago_payload, s.body)
      FROM unnest(${items.map((c) => c.id)}::bigint[], ${subscriptions}::text[], ${bodies}::jsonb[]) AS s(id, subscription, body)
     WHERE e.id = s.id AND ${owned(items)}
    RETURNING ${CLAIMED_COLUMNS}`.execute(trx))
  return rows.map(toClaimed).sort((a, b) => a.id - b.id)
}

/**
 * Lago has these events. Whoever changes a claimed event's status meanwhile (a Lago webhook, a reroute) takes its
 * claim token, so ownership is the whole guard: a status condition here would also let PostgreSQL plan the update
 * over the partial index of unsent events, which it did on a month not yet analyzed (every unsent event read).
 */
export async function markForwarded (db: Kysely<Database>, claims: Claim[]): Promise<number> {
  if (claims.length === 0) return 0
  const { numAffectedRows } = await pinned(db, async (trx) => await sql`
    UPDATE litellm_usage_events e
       SET status = 'forwarded', processed_at = now(), attempts = attempts + 1, last_error = NULL,
           claimed_by = NULL, lease_expires_at = NULL
     WHERE ${owned(claims)}`.execute(trx))
  return Number(numAffectedRows ?? 0)
}

/** Why an event is not in Lago: `rejected` means Lago refused it (it does not have it); `exhausted`, it may. */
export interface DeliveryError {
  /** rejected: Lago refused the event (it does not hold it); transient: a failed send that is retried;
   * exhausted: MAX_ATTEMPTS transient failures (Lago may hold it); unmapped: no subscription yet. */
  kind: 'rejected' | 'transient' | 'exhausted' | 'unmapped'
  message: string
  status?: number | null
  lago?: unknown
}

/** Dead letters: kept with the reason, never dropped; POST /webhooks/retry brings them back. */
export async function markDead (db: Kysely<Database>, items: Array<Claim & { error: DeliveryError }>): Promise<number> {
  if (items.length === 0) return 0
  const { numAffectedRows } = await pinned(db, async (trx) => await sql`
    UPDATE litellm_usage_events e
       SET status = 'dead', attempts = e.attempts + 1, last_error = x.error,
           claimed_by = NULL, lease_expires_at = NULL
      FROM unnest(${items.map((i) => i.id)}::bigint[], ${items.map((i) => JSON.stringify(i.error))}::jsonb[]) AS x(id, error)
     WHERE e.id = x.id AND ${owned(items)}`.execute(trx))
  return Number(numAffectedRows ?? 0)
}

/**
 * A send failed while Lago was otherwise healthy: the attempt counts. Retried after `delayMs`, or dead once
 * `maxAttempts` sends have failed.
 */
export async function scheduleRetry (db: Kysely<Database>, items: Array<Claim & { delayMs: number }>, error: DeliveryError, maxAttempts: number): Promise<{ retried: number, dead: number }> {
  if (items.length === 0) return { retried: 0, dead: 0 }
  const { rows } = await pinned(db, async (trx) => await sql<{ status: string }>`
    UPDATE litellm_usage_events e
       SET attempts = e.attempts + 1,
           status = CASE WHEN e.attempts + 1 >= ${maxAttempts} THEN 'dead' ELSE 'failed' END,
           next_attempt_at = now() + make_interval(secs => x.delay_ms / 1000.0),
           last_error = ${JSON.stringify(error)}::jsonb || jsonb_build_object('kind',
             CASE WHEN e.attempts + 1 >= ${maxAttempts} THEN 'exhausted' ELSE ${error.kind} END),
           claimed_by = NULL, lease_expires_at = NULL
      FROM unnest(${items.map((i) => i.id)}::bigint[], ${items.map((i) => i.delayMs)}::float8[]) AS x(id, delay_ms)
     WHERE e.id = x.id AND ${owned(items)}
    RETURNING e.status`.execute(trx))
  const dead = rows.filter((r) => r.status === 'dead').length
  return { retried: rows.length - dead, dead }
}

/** Gives events back without counting an attempt (Lago down, rate limited, credentials refused, shutdown). */
export async function release (db: Kysely<Database>, claims: Claim[], delayMs = 0): Promise<number> {
  if (claims.length === 0) return 0
  const { numAffectedRows } = await pinned(db, async (trx) => await sql`
    UPDATE litellm_usage_events e
       SET claimed_by = NULL, lease_expires_at = NULL, next_attempt_at = now() + make_interval(secs => ${delayMs / 1000})
     WHERE ${owned(claims)}`.execute(trx))
  return Number(numAffectedRows ?? 0)
}

/**
 * An organization's pause ended early (its key was rotated, say): the events given back until the end of the
 * pause are due now. Only pending ones: a failed event's wait is its retry backoff.
 */
export async function releasePausedNow (db: Kysely<Database>, organization: string): Promise<number> {
  const { numAffectedRows } = await sql`
    UPDATE litellm_usage_events SET next_attempt_at = now()
     WHERE organization_id = ${organization} AND status = 'pending' AND next_attempt_at > now()
       AND (lease_expires_at IS NULL OR lease_expires_at < now())`.execute(db)
  return Number(numAffectedRows ?? 0)
}

/** Every event a worker still holds (shutdown: another replica may take them at once). */
export async function releaseAllClaimedBy (db: Kysely<Database>, worker: string): Promise<number> {
  const { numAffectedRows } = await sql`
    UPDATE litellm_usage_events SET claimed_by = NULL, lease_expires_at = NULL
     WHERE claimed_by = ${worker} AND status IN ('pending', 'failed')`.execute(db)
  return Number(numAffectedRows ?? 0)
}

/** No subscription to send to: the events wait as `unmapped`, each with its reason, until their customer exists. */
export async function markUnmapped (db: Kysely<Database>, items: Array<Claim & { reason: string }>): Promise<number> {
  if (items.length === 0) return 0
  const { numAffectedRows } = await pinned(db, async (trx) => await sql`
    UPDATE litellm_usage_events e
       SET status = 'unmapped', last_error = jsonb_build_object('kind', 'unmapped', 'message', x.reason),
           claimed_by = NULL, lease_expires_at = NULL
      FROM unnest(${items.map((i) => i.id)}::bigint[], ${items.map((i) => i.reason)}::text[]) AS x(id, reason)
     WHERE e.id = x.id AND ${owned(items)}`.execute(trx))
  return Number(numAffectedRows ?? 0)
}

/**
 * Unmapped events of customers that now have a subscription go back to the queue: of these customers of one
 * organization, or of every organization's customers now mapped.
 */
export async function releaseMappedCustomers (db: Kysely<Database>, scope?: { organization: string, customerIds?: string[] }): Promise<number> {
  const customerIds = scope?.customerIds
  const { numAffectedRows } = await sql`
    UPDATE litellm_usage_events e
       SET status = 'pending', next_attempt_at = now(), last_error = NULL
      FROM customers c
     WHERE e.status = 'unmapped' AND c.organization_id = e.organization_id AND c.external_id = e.customer_external_id
       AND c.subscription_external_id IS NOT NULL
       ${scope !== undefined ? sql`AND e.organization_id = ${scope.organization}` : sql``}
       AND e.customer_external_id <> ${NO_CUSTOMER}
       ${customerIds !== undefined ? sql`AND e.customer_external_id = ANY(${customerIds}::text[])` : sql``}`.execute(db)
  return Number(numAffectedRows ?? 0)
}

/**
 * Customers with unmapped events (to look up in Lago, in case they were created there directly). Events that
 * name no customer at all wait for a customer mapping instead: looking their placeholder up in Lago (or
 * provisioning it) would be wrong.
 */
export async function unmappedCustomers (db: Kysely<Database>, organization: string, limit: number): Promise<string[]> {
  const { rows } = await sql<{ customer_external_id: string }>`
    SELECT DISTINCT customer_external_id FROM litellm_usage_events
     WHERE organization_id = ${organization} AND status = 'unmapped' AND customer_external_id <> ${NO_CUSTOMER} LIMIT ${limit}`.execute(db)
  return rows.map((r) => r.customer_external_id)
}

/** One organization's events not yet in Lago: how many (counted up to a cap), and the age of the oldest. */
export interface Backlog { unsent: number, oldest_unsent_age_seconds: number | null }

/**
 * The backlog of each of these organizations, read from the partial index of unsent events. /health is polled
 * often and counting a million rows takes a while, so the count stops at `cap`.
 */
export async function backlogs (db: Kysely<Database>, organizations: readonly string[], cap = 100_000): Promise<Map<string, Backlog>> {
  if (organizations.length === 0) return new Map()
  const { rows } = await sql<{ id: string, unsent: number, oldest: number | null }>`
    SELECT o.id,
           (SELECT count(*)::int FROM (SELECT 1 FROM litellm_usage_events
             WHERE organization_id = o.id AND status IN ('pending', 'failed') LIMIT ${cap}) x) AS unsent,
           (SELECT extract(epoch FROM now() - received_at)::float8 FROM litellm_usage_events
             WHERE organization_id = o.id AND status IN ('pending', 'failed') ORDER BY id LIMIT 1) AS oldest
      FROM unnest(${[...organizations]}::text[]) AS o(id)`.execute(db)
  return new Map(rows.map((r) => [r.id, { unsent: r.unsent, oldest_unsent_age_seconds: r.oldest === null ? null : Math.max(0, Math.round(r.oldest)) }]))
}

export async function recordDeliveryAttempt (db: Kysely<Database>, attempt: NewDeliveryAttempt): Promise<void> {
  await db.insertInto('webhook_delivery_logs').values(attempt).execute()
}

export interface RetryFilter {
  /** Only this organization's events: a retry never reaches another organization's. */
  organization: string
  requestIds?: string[]
  customerId?: string
  from?: Date
  to?: Date
  /** Only events whose last error says exactly this (a group of GET /api/problems). */
  reason?: string
  statuses: Array<'failed' | 'dead' | 'lago_error'>
}

/**
 * Puts failed and dead events back to pending (delivered ones are never touched). An event Lago refused keeps
 * nothing of its first body, so it is rebuilt (e.g. for a subscription fixed since); any other keeps its frozen
 * body, because Lago may already hold it and only an identical resend is recognised as a duplicate.
 */
export async function retryEvents (db: Kysely<Database>, filter: RetryFilter): Promise<number> {
  const { numAffectedRows } = await sql`
    UPDATE litellm_usage_events
       SET status = 'pending', attempts = 0, next_attempt_at = now(),
           lago_payload = CASE WHEN last_error->>'kind' = 'rejected' THEN NULL ELSE lago_payload END,
           external_subscription_id = CASE WHEN last_error->>'kind' = 'rejected' THEN NULL ELSE external_subscription_id END,
           last_error = NULL
     WHERE status = ANY(${filter.statuses}::text[]) AND organization_id = ${filter.organization}
       ${filter.requestIds !== undefined ? sql`AND id IN (SELECT event_id FROM usage_event_keys WHERE organization_id = ${filter.organization} AND request_id = ANY(${filter.requestIds}::text[]))` : sql``}
       ${filter.customerId !== undefined ? sql`AND customer_external_id = ${filter.customerId}` : sql``}
       ${filter.from !== undefined ? sql`AND "timestamp" >= ${filter.from}` : sql``}
       ${filter.to !== undefined ? sql`AND "timestamp" < ${filter.to}` : sql``}
       ${filter.reason !== undefined ? sql`AND coalesce(last_error->>'message', 'unknown') = ${filter.reason}` : sql``}`.execute(db)
  return Number(numAffectedRows ?? 0)
}
