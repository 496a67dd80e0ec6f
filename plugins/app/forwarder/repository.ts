import { sql, type Kysely, type RawBuilder } from 'kysely'
import type { EventInputObject } from '../lago/types.js'
import type { Database, NewDeliveryAttempt } from '../../../db/database.js'
import { PIN_INDEX_PLAN } from '../../../db/plans.js'
import { PREPARED } from '../../../db/prepared.js'
import { jsonbArray } from '../../../db/json-array.js'
import { NO_CUSTOMER } from '../usage-events/normalize.js'
import { lagoEventBody, type UsageEventForLago } from './lago-event.js'

/** A usage event claimed by one forwarder worker; the claim token proves ownership when settling. */
export interface ClaimedEvent {
  id: number
  requestId: string
  customerExternalId: string
  claimToken: number
  attempts: number
  /** Null until the event's Lago subscription is known; then frozen for every send. */
  body: EventInputObject | null
  /** What the body is built from, once its subscription is known. */
  event: UsageEventForLago
}

type Claim = Pick<ClaimedEvent, 'id' | 'claimToken'>

type DueRow = UsageEventForLago & {
  id: number
  customer_external_id: string
  /** Its partition key as PostgreSQL writes it (to the microsecond: a Date keeps milliseconds), for the claim. */
  received_at: string
  attempts: number
  lago_payload: EventInputObject | null
  known_subscription: string | null
  /** The token of the expired claim of the event, if any (its holder died, or ran out of time): taken over. */
  expired_token: number | null
}

/**
 * One organization's oldest due events that no live claim holds, locked (the claim's first step; exported so that
 * its plan can be checked), but for `passed` (events a claim already tried). Its shape matches the partial index on
 * (organization_id, id) WHERE status IN ('pending', 'failed'); each candidate costs one probe of the claims' primary
 * key.
 */
export const dueEvents = (organization: string, limit: number, passed: readonly number[] = []) => sql`
  SELECT e.id, e.request_id, e.customer_external_id, e.received_at::text AS received_at, e.attempts, e.lago_payload,
         e.external_subscription_id, e."timestamp", e.cost_usd, e.tokens_input, e.tokens_output, e.total_tokens, e.model, e.provider,
         x.token AS expired_token
    FROM litellm_usage_events e
    LEFT JOIN usage_event_claims x ON x.event_id = e.id
   WHERE e.organization_id = ${organization} AND e.status IN ('pending', 'failed') AND e.next_attempt_at <= now()
     AND (x.event_id IS NULL OR x.lease_expires_at < now())
     -- A disabled organization's events wait, even for a worker that chose it before the change reached its lanes.
     AND EXISTS (SELECT 1 FROM organizations o WHERE o.id = ${organization} AND o.status = 'active')
     ${passed.length > 0 ? sql`AND e.id <> ALL(${passed}::bigint[])` : sql``}
   ORDER BY e.id
   LIMIT ${limit}
   FOR UPDATE OF e SKIP LOCKED`

/** Runs a claim or a settle in a transaction of its own, with PIN_INDEX_PLAN. */
async function pinned<T> (db: Kysely<Database>, run: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  return await db.transaction().execute(async (trx) => {
    await PIN_INDEX_PLAN.execute(trx)
    return await run(trx)
  })
}

/** Passes of one claim at most: each one after the first picks up what claims committed meanwhile took. */
const CLAIM_PASSES = 3

/**
 * Claims one organization's oldest due events: a row per event in usage_event_claims (worker, lease, a new token),
 * the events themselves untouched. One short transaction, no network call inside.
 * - Rows another claim is locking are skipped (FOR UPDATE SKIP LOCKED), and so are events under a live lease.
 * - A claim that commits while this one reads is not in this one's snapshot, and its rows are no longer locked: the
 *   claims' primary key catches it (the insert leaves the event to that claim), and another pass, with a snapshot of
 *   its own, fills the batch with other events. (The forwarder takes one organization's claims one at a time per
 *   replica, so this happens between replicas.)
 * - An event whose customer (of the same organization) has a known subscription gets its Lago body frozen in its
 *   claim, built in TypeScript between the locking SELECT and the insert; a body an expired claim froze is kept,
 *   since Lago may hold it.
 */
export async function claimDueEvents (db: Kysely<Database>, opts: { organization: string, worker: string, limit: number, leaseMs: number, metricCode: string }): Promise<ClaimedEvent[]> {
  return await pinned(db, async (trx) => {
    const events: ClaimedEvent[] = []
    const passed: number[] = []
    for (let pass = 0; pass < CLAIM_PASSES && events.length < opts.limit; pass++) {
      const wanted = opts.limit - events.length
      const { rows: due } = await sql<DueRow>`${PREPARED}
        WITH e AS (${dueEvents(opts.organization, wanted, passed)})
        SELECT e.*, coalesce(e.external_subscription_id, c.subscription_external_id) AS known_subscription
          FROM e LEFT JOIN customers c ON c.organization_id = ${opts.organization} AND c.external_id = e.customer_external_id`.execute(trx)
      if (due.length === 0) break
      const claimed = await insertClaims(trx, due, opts)
      for (const r of due) {
        const claim = claimed.get(r.id)
        if (claim === undefined) continue
        events.push({
          id: r.id,
          requestId: r.request_id,
          customerExternalId: r.customer_external_id,
          claimToken: claim.token,
          attempts: r.attempts,
          body: r.lago_payload ?? claim.body,
          event: eventForLago(r)
        })
      }
      // Every event it read is claimed: the batch is as full as the queue allows.
      if (claimed.size === due.length) break
      passed.push(...due.map((r) => r.id))
    }
    return events.sort((a, b) => a.id - b.id)
  })
}

/**
 * Inserts the claims of these events; returns the token and body of those it got. An expired claim ends first, by
 * its token, and what it froze carries over (Lago may hold it): read from the DELETE, which sees the claim as its
 * holder last left it (a body frozen after this claim's snapshot included). An event another claim took meanwhile is
 * left to it: ON CONFLICT DO NOTHING (which waits for a claim of it being inserted or deleted at that moment).
 */
async function insertClaims (trx: Kysely<Database>, due: DueRow[], opts: { organization: string, worker: string, leaseMs: number, metricCode: string }): Promise<Map<number, { token: number, body: EventInputObject | null }>> {
  const expired = due.filter((r) => r.expired_token !== null)
  const takenOver = new Map<number, { subscription: string | null, body: EventInputObject | null }>()
  if (expired.length > 0) {
    const { rows } = await sql<{ event_id: number, external_subscription_id: string | null, lago_payload: EventInputObject | null }>`${PREPARED}
      DELETE FROM usage_event_claims c USING unnest(${expired.map((r) => r.id)}::bigint[], ${expired.map((r) => r.expired_token)}::bigint[]) AS s(id, token)
       WHERE c.event_id = s.id AND c.token = s.token
      RETURNING c.event_id, c.external_subscription_id, c.lago_payload`.execute(trx)
    for (const r of rows) takenOver.set(r.event_id, { subscription: r.external_subscription_id, body: r.lago_payload })
  }
  // An expired claim another claim ended first: that one has the event.
  const claimable = due.filter((r) => r.expired_token === null || takenOver.has(r.id))
  // What this claim freezes (a body already in the event stays there): the expired claim's, else one built for the
  // customer's known subscription, else none (the forwarder looks the subscription up).
  const frozen = claimable.map((r): { subscription: string | null, body: EventInputObject | null } => {
    if (r.lago_payload !== null) return { subscription: null, body: null }
    const previous = takenOver.get(r.id)
    if (previous?.body != null) return previous
    if (r.known_subscription === null) return { subscription: null, body: null }
    return { subscription: r.known_subscription, body: lagoEventBody(eventForLago(r), r.known_subscription, opts.metricCode) }
  })
  const { rows } = await sql<{ event_id: number, token: number }>`${PREPARED}
    INSERT INTO usage_event_claims (event_id, received_at, organization_id, worker, lease_expires_at, external_subscription_id, lago_payload)
    SELECT s.id, s.received_at, ${opts.organization}, ${opts.worker}, now() + make_interval(secs => ${opts.leaseMs / 1000}), s.subscription, s.body
      FROM unnest(${claimable.map((r) => r.id)}::bigint[], ${claimable.map((r) => r.received_at)}::timestamptz[],
                  ${frozen.map((f) => f.body === null ? null : f.subscription)}::text[], ${jsonbArray(frozen.map((f) => f.body))})
        AS s(id, received_at, subscription, body)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, token`.execute(trx)
  const bodyOf = new Map(claimable.map((r, i) => [r.id, frozen[i].body]))
  return new Map(rows.map((r) => [r.event_id, { token: r.token, body: bodyOf.get(r.event_id) ?? null }]))
}

const eventForLago = (r: UsageEventForLago): UsageEventForLago => ({
  request_id: r.request_id,
  timestamp: r.timestamp,
  cost_usd: r.cost_usd,
  tokens_input: r.tokens_input,
  tokens_output: r.tokens_output,
  total_tokens: r.total_tokens,
  model: r.model,
  provider: r.provider
})

/**
 * Freezes the Lago body of claimed events now that their subscription is known, in their claims (a body already
 * frozen stays as it is); returns those still held, with it.
 */
export async function freezeBodies (db: Kysely<Database>, claims: ClaimedEvent[], subscriptionOf: Map<number, string>, metricCode: string): Promise<ClaimedEvent[]> {
  const items = claims.filter((c) => subscriptionOf.has(c.id))
  if (items.length === 0) return []
  const subscriptions = items.map((c) => subscriptionOf.get(c.id) as string)
  const bodies = items.map((c, i) => lagoEventBody(c.event, subscriptions[i], metricCode))
  const { rows } = await sql<{ event_id: number, lago_payload: EventInputObject }>`${PREPARED}
    UPDATE usage_event_claims c
       SET external_subscription_id = coalesce(c.external_subscription_id, s.subscription),
           lago_payload = coalesce(c.lago_payload, s.body)
      FROM unnest(${items.map((c) => c.id)}::bigint[], ${items.map((c) => c.claimToken)}::bigint[], ${subscriptions}::text[], ${jsonbArray(bodies)})
        AS s(id, token, subscription, body)
     WHERE c.event_id = s.id AND c.token = s.token
    RETURNING c.event_id, c.lago_payload`.execute(db)
  const frozen = new Map(rows.map((r) => [r.event_id, r.lago_payload]))
  return items.filter((c) => frozen.has(c.id)).map((c) => ({ ...c, body: frozen.get(c.id) as EventInputObject }))
}

/** A column an event's settle sets, and to what (an expression over the event `e` and the claim's values `x`). */
type Assignment = [column: string, value: RawBuilder<unknown>]

/**
 * Settles claims: ends those still held with their tokens (deletes them) and, for each event still unsent, applies
 * `set`. Whatever the event's status, what its claim froze moves into it: an event a Lago webhook marked meanwhile
 * keeps the body Lago was sent. A claim whose event is not in the table (its month detached by retention, which
 * puts unsent events back) is kept, body and all, for whoever claims the event next.
 *
 * Locks go claim, then event, as the Lago webhook's do; a claim takes them the other way (the event, then an
 * expired claim of it), so a takeover and a late settle of the claim it takes over can deadlock. PostgreSQL then
 * aborts one: the settle's events are sent again with the same body, or the claim comes again.
 * `values` are per-claim columns (`x.<name>` in `set`), in the claims' order. Returns the statuses the events were
 * left at (those no longer unsent keep theirs, which is never the settle's own: lago_error, say).
 */
async function settle (db: Kysely<Database>, claims: Claim[], set: Assignment[], values: Array<{ name: string, type: string, of: unknown[] }> = []): Promise<string[]> {
  if (claims.length === 0) return []
  const arrays = values.map((v) => sql`, ${v.of}::${sql.raw(v.type)}[]`)
  const names = values.map((v) => sql`, ${sql.id(v.name)}`)
  const assignments = set.map(([column, value]) =>
    sql`${sql.id(column)} = CASE WHEN e.status IN ('pending', 'failed') THEN ${value} ELSE e.${sql.id(column)} END`)
  const { rows } = await pinned(db, async (trx) => await sql<{ status: string }>`${PREPARED}
    WITH x AS (
      DELETE FROM usage_event_claims c
       USING unnest(${claims.map((c) => c.id)}::bigint[], ${claims.map((c) => c.claimToken)}::bigint[]${sql.join(arrays, sql``)})
          AS s(id, token${sql.join(names, sql``)}), litellm_usage_events ev
       WHERE c.event_id = s.id AND c.token = s.token AND ev.id = c.event_id AND ev.received_at = c.received_at
      RETURNING s.*, c.received_at, c.external_subscription_id AS frozen_subscription, c.lago_payload AS frozen_body
    )
    UPDATE litellm_usage_events e
       SET ${sql.join(assignments)},
           external_subscription_id = coalesce(e.external_subscription_id, x.frozen_subscription),
           lago_payload = coalesce(e.lago_payload, x.frozen_body)
      FROM x
     WHERE e.id = x.id AND e.received_at = x.received_at
    RETURNING e.status`.execute(trx))
  return rows.map((r) => r.status)
}

/**
 * A forwarded event Lago will never bill, where this service can know it: a timestamp before the start of the
 * subscription it went to (the customer's, as this service recorded it). It stays forwarded (Lago holds it); the
 * billing audit counts it. Set in the settle itself: as a statement of its own after each batch it cost a
 * PostgreSQL round trip, a parse and a plan, and a probe of every month's primary key per event.
 */
const BEFORE_SUBSCRIPTION_START = sql`coalesce((
  SELECT jsonb_build_object('kind', 'before_subscription_start',
           'message', 'the event is older than the start of subscription ' || c.subscription_external_id || ': Lago will not bill it',
           'subscription_started_at', c.subscription_started_at)
    FROM customers c
   WHERE c.organization_id = e.organization_id AND c.external_id = e.customer_external_id
     AND c.subscription_external_id = coalesce(e.external_subscription_id, x.frozen_subscription)
     AND c.subscription_started_at IS NOT NULL AND e."timestamp" < c.subscription_started_at), e.billing_warning)`

/** Lago has these events. */
export async function markForwarded (db: Kysely<Database>, claims: Claim[]): Promise<number> {
  const statuses = await settle(db, claims, [['status', sql`'forwarded'`], ['processed_at', sql`now()`], ['attempts', sql`e.attempts + 1`], ['last_error', sql`NULL`],
    ['billing_warning', BEFORE_SUBSCRIPTION_START]])
  return statuses.filter((s) => s === 'forwarded').length
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
  const statuses = await settle(db, items, [['status', sql`'dead'`], ['attempts', sql`e.attempts + 1`], ['last_error', sql`x.error`]],
    [{ name: 'error', type: 'jsonb', of: items.map((i) => JSON.stringify(i.error)) }])
  return statuses.filter((s) => s === 'dead').length
}

/**
 * A send failed while Lago was otherwise healthy: the attempt counts. Retried after `delayMs`, or dead once
 * `maxAttempts` sends have failed.
 */
export async function scheduleRetry (db: Kysely<Database>, items: Array<Claim & { delayMs: number }>, error: DeliveryError, maxAttempts: number): Promise<{ retried: number, dead: number }> {
  const statuses = await settle(db, items, [
    ['attempts', sql`e.attempts + 1`],
    ['status', sql`CASE WHEN e.attempts + 1 >= ${maxAttempts} THEN 'dead' ELSE 'failed' END`],
    ['next_attempt_at', sql`now() + make_interval(secs => x.delay_ms / 1000.0)`],
    ['last_error', sql`${JSON.stringify(error)}::jsonb || jsonb_build_object('kind',
      CASE WHEN e.attempts + 1 >= ${maxAttempts} THEN 'exhausted' ELSE ${error.kind} END)`]
  ], [{ name: 'delay_ms', type: 'float8', of: items.map((i) => i.delayMs) }])
  return { retried: statuses.filter((s) => s === 'failed').length, dead: statuses.filter((s) => s === 'dead').length }
}

/** Gives events back without counting an attempt (Lago down, rate limited, credentials refused, shutdown). */
export async function release (db: Kysely<Database>, claims: Claim[], delayMs = 0): Promise<number> {
  const statuses = await settle(db, claims, [['next_attempt_at', sql`now() + make_interval(secs => ${delayMs / 1000})`]])
  return statuses.filter((s) => s === 'pending' || s === 'failed').length
}

/**
 * An organization's pause ended early (its key was rotated, say): the events given back until the end of the
 * pause are due now. Only pending ones: a failed event's wait is its retry backoff.
 */
export async function releasePausedNow (db: Kysely<Database>, organization: string): Promise<number> {
  const { numAffectedRows } = await sql`
    UPDATE litellm_usage_events SET next_attempt_at = now()
     WHERE organization_id = ${organization} AND status = 'pending' AND next_attempt_at > now()`.execute(db)
  return Number(numAffectedRows ?? 0)
}

/**
 * Every claim a worker still holds ends now (shutdown: another replica may take its events at once). The claims
 * stay, expired, with what they froze: the next claim of each event keeps its body.
 */
export async function releaseAllClaimedBy (db: Kysely<Database>, worker: string): Promise<number> {
  const { numAffectedRows } = await sql`
    UPDATE usage_event_claims SET lease_expires_at = now() WHERE worker = ${worker} AND lease_expires_at > now()`.execute(db)
  return Number(numAffectedRows ?? 0)
}

/** No subscription to send to: the events wait as `unmapped`, each with its reason, until their customer exists. */
export async function markUnmapped (db: Kysely<Database>, items: Array<Claim & { reason: string }>): Promise<number> {
  const statuses = await settle(db, items, [['status', sql`'unmapped'`], ['last_error', sql`jsonb_build_object('kind', 'unmapped', 'message', x.reason)`]],
    [{ name: 'reason', type: 'text', of: items.map((i) => i.reason) }])
  return statuses.filter((s) => s === 'unmapped').length
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
