import { sql, type Kysely } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database } from '../../../db/database.js'
import { recordSubscriptionStart } from '../../../db/customers.js'
import type { CallOptions } from '../lago/client.js'
import type { CustomerUsageObject, SubscriptionObjectExtended } from '../lago/types.js'
import { LagoApiError } from '../lago/errors.js'
import { Decimal } from '../lago/decimal.js'

/** The part of the Lago client the audit reads. */
export interface LagoUsageApi {
  getSubscription: (externalId: string, query?: undefined, options?: CallOptions) => Promise<Pick<SubscriptionObjectExtended, 'started_at' | 'status'>>
  getCurrentUsage: (customerId: string, subscriptionId: string, query?: undefined, options?: CallOptions) => Promise<Pick<CustomerUsageObject, 'from_datetime' | 'to_datetime' | 'charges_usage'>>
}

export type AuditCause = 'before_subscription_start' | 'lago_error' | 'still_pending' | 'forwarding_in_progress' | 'dead_maybe_in_lago' | 'unexplained'

export interface CustomerAudit {
  customer_external_id: string
  subscription_external_id: string
  period: { from: string, to: string } | null
  forwarded: { events: number, total_tokens: string, cost_usd: string }
  lago: { events_count: number, units: string } | null
  status: 'ok' | 'mismatch' | 'error'
  causes: Array<{ cause: AuditCause, events: number, message: string }>
  error: string | null
}

interface LocalCounts {
  billable_events: number
  billable_tokens: string
  billable_cost: string
  before_start: number
  lago_error: number
  pending: number
  claimed_unsettled: number
  claimed_unsettled_tokens: string
  settled_recently: number
  settled_recently_tokens: string
  dead_maybe_sent: number
  dead_maybe_sent_tokens: string
}

/**
 * What this service sent to one subscription for its current billing period [from, to]: events Lago should bill
 * (forwarded, timestamp inside the period and not before the subscription's start), and those it will not:
 * forwarded during the period but older than the start, marked lago_error, or not yet in Lago (pending or failed;
 * an event's row gets its subscription when its send is settled, its claim holds it until then). Two counts bound
 * how far Lago's figures may differ from them while events are being forwarded: billable events claimed for this
 * subscription and not yet settled (their body frozen: sent, or about to be, so Lago may already have them) and
 * billable events settled since `settledSince` (Lago may not count them yet). Reads only the customer's rows
 * (index on organization, customer, timestamp) and the claims of those not yet settled, never the whole table.
 */
async function localCounts (db: Kysely<Database>, organizationId: string, customer: string, subscription: string, from: Date, to: Date, startedAt: Date | null, settledSince: Date): Promise<LocalCounts> {
  const start = startedAt ?? new Date(0)
  const billable = sql`e."timestamp" >= ${from} AND e."timestamp" <= ${to} AND e."timestamp" >= ${start}`
  const claimedUnsettled = sql`e.status IN ('pending', 'failed') AND ${billable} AND coalesce(e.lago_payload, c.lago_payload) IS NOT NULL
                               AND coalesce(e.external_subscription_id, c.external_subscription_id) = ${subscription}`
  const settledRecently = sql`e.status = 'forwarded' AND ${billable} AND e.processed_at >= ${settledSince}`
  // Given up after sends with no answer (exhausted): Lago may hold them. Their body and subscription are in the row.
  const deadMaybeSent = sql`e.status = 'dead' AND ${billable} AND e.last_error->>'kind' = 'exhausted' AND e.lago_payload IS NOT NULL`
  const { rows } = await sql<LocalCounts>`
    SELECT count(*) FILTER (WHERE e.status = 'forwarded' AND ${billable})::int AS billable_events,
           coalesce(sum(e.total_tokens) FILTER (WHERE e.status = 'forwarded' AND ${billable}), 0)::text AS billable_tokens,
           coalesce(sum(e.cost_usd) FILTER (WHERE e.status = 'forwarded' AND ${billable}), 0)::text AS billable_cost,
           count(*) FILTER (WHERE e.status IN ('forwarded', 'lago_error') AND e."timestamp" < ${start} AND e.processed_at >= ${from})::int AS before_start,
           count(*) FILTER (WHERE e.status = 'lago_error' AND e."timestamp" >= ${from} AND e."timestamp" <= ${to})::int AS lago_error,
           count(*) FILTER (WHERE e.status IN ('pending', 'failed') AND e."timestamp" >= ${from} AND e."timestamp" <= ${to})::int AS pending,
           count(*) FILTER (WHERE ${claimedUnsettled})::int AS claimed_unsettled,
           coalesce(sum(e.total_tokens) FILTER (WHERE ${claimedUnsettled}), 0)::text AS claimed_unsettled_tokens,
           count(*) FILTER (WHERE ${settledRecently})::int AS settled_recently,
           coalesce(sum(e.total_tokens) FILTER (WHERE ${settledRecently}), 0)::text AS settled_recently_tokens,
           count(*) FILTER (WHERE ${deadMaybeSent})::int AS dead_maybe_sent,
           coalesce(sum(e.total_tokens) FILTER (WHERE ${deadMaybeSent}), 0)::text AS dead_maybe_sent_tokens
      FROM litellm_usage_events e
      -- Only an unsettled event can have a claim: forwarded rows never probe the claims.
      LEFT JOIN LATERAL (SELECT c.external_subscription_id, c.lago_payload FROM usage_event_claims c
                          WHERE e.status IN ('pending', 'failed') AND c.event_id = e.id AND c.received_at = e.received_at) AS c ON true
     WHERE e.organization_id = ${organizationId} AND e.customer_external_id = ${customer}
       AND (e.external_subscription_id = ${subscription} OR (e.external_subscription_id IS NULL AND e.status IN ('pending', 'failed')))`.execute(db)
  return rows[0]
}

/**
 * One customer of one organization: its Lago's current usage for the subscription, then the organization's local
 * counts (no transaction across the calls).
 */
export async function auditCustomer (db: Kysely<Database>, lago: LagoUsageApi, metricCode: string, customer: string, subscription: string, organizationId = DEFAULT_ORGANIZATION_ID, lagoLagMs = 0): Promise<CustomerAudit> {
  const base = { customer_external_id: customer, subscription_external_id: subscription }
  let usage: Awaited<ReturnType<LagoUsageApi['getCurrentUsage']>>
  let startedAt: Date | null
  let settledSince: Date
  try {
    const s = await lago.getSubscription(subscription)
    startedAt = s.started_at != null ? new Date(s.started_at) : null
    // The database's clock, as the settle's processed_at is: events settled from here on, or up to lagoLagMs before
    // (Lago counts an event in its usage from a background job), may be missing from what Lago is about to answer.
    settledSince = (await sql<{ since: Date }>`SELECT clock_timestamp() - make_interval(secs => ${lagoLagMs / 1000}) AS since`.execute(db)).rows[0].since
    usage = await lago.getCurrentUsage(customer, subscription)
  } catch (err) {
    if (err instanceof LagoApiError && (err.status === 404 || err.status === 405)) {
      return { ...base, period: null, forwarded: { events: 0, total_tokens: '0', cost_usd: '0' }, lago: null, status: 'error', causes: [], error: `Lago has no active subscription ${subscription} for ${customer} (${err.message})` }
    }
    throw err
  }
  if (startedAt !== null) {
    await recordSubscriptionStart(db, customer, subscription, startedAt, organizationId)
  }
  const from = new Date(usage.from_datetime)
  const to = new Date(usage.to_datetime)
  const local = await localCounts(db, organizationId, customer, subscription, from, to, startedAt, settledSince)
  const charges = (usage.charges_usage ?? []).filter((c) => c.billable_metric.code === metricCode)
  const lagoEvents = charges.reduce((n, c) => n + c.events_count, 0)
  const lagoUnits = Decimal.sum(charges.map((c) => Decimal.from(c.units)))
  const sumsTokens = charges.every((c) => c.billable_metric.aggregation_type === 'sum_agg')

  const causes: CustomerAudit['causes'] = []
  if (local.before_start > 0) causes.push({ cause: 'before_subscription_start', events: local.before_start, message: 'forwarded this period with a timestamp before the subscription started: Lago stores them and never bills them' })
  if (local.lago_error > 0) causes.push({ cause: 'lago_error', events: local.lago_error, message: 'Lago reported it cannot bill them (status lago_error, reason in last_error)' })
  if (local.pending > 0) causes.push({ cause: 'still_pending', events: local.pending, message: 'not yet (or not known to be) in Lago: pending or awaiting a retry' })
  const billableTokens = Decimal.from(local.billable_tokens)
  const countsDiffer = lagoEvents !== local.billable_events || (sumsTokens && !lagoUnits.eq(billableTokens))
  // While events are being forwarded, Lago's figures and the forwarded ones are read at different moments: Lago may
  // already have events claimed and not yet settled here, and may not count yet those settled since settledSince.
  // Within those bounds (count and tokens, each on its own) the difference is forwarding in progress; beyond, not.
  const within = (lago: number | Decimal, forwarded: Decimal, ahead: Decimal, behind: Decimal): boolean =>
    forwarded.minus(behind).lte(lago) && forwarded.plus(ahead).gte(lago)
  /** Whether Lago's figures lie between the forwarded ones less those settled recently and plus `ahead` (count, tokens). */
  const lagoWithin = (aheadEvents: Decimal, aheadTokens: Decimal): boolean =>
    within(lagoEvents, Decimal.from(local.billable_events), aheadEvents, Decimal.from(local.settled_recently)) &&
    (!sumsTokens || within(lagoUnits, billableTokens, aheadTokens, Decimal.from(local.settled_recently_tokens)))
  const claimed = Decimal.from(local.claimed_unsettled)
  const claimedTokens = Decimal.from(local.claimed_unsettled_tokens)
  const inFlight = lagoWithin(claimed, claimedTokens)
  // Beyond that, events given up on after sends with no answer may be what Lago has more of: a mismatch to act on.
  const withDead = !inFlight && local.dead_maybe_sent > 0 && lagoWithin(claimed.plus(local.dead_maybe_sent), claimedTokens.plus(local.dead_maybe_sent_tokens))
  const unexplained = countsDiffer && !inFlight && !withDead
  if (countsDiffer && withDead) {
    causes.push({
      cause: 'dead_maybe_in_lago',
      events: local.dead_maybe_sent,
      message: `given up on after sends that got no answer (dead, last_error.kind exhausted): Lago may hold them and counts ${lagoEvents} events where ${local.billable_events} were forwarded; ` +
        'POST /webhooks/retry sends them again with the same transaction_id, and Lago keeps one copy'
    })
  }
  if (countsDiffer && inFlight) {
    causes.push({
      cause: 'forwarding_in_progress',
      events: Math.abs(lagoEvents - local.billable_events),
      message: `Lago counts ${lagoEvents} events (${lagoUnits.toString()} units) where ${local.billable_events} were forwarded (${local.billable_tokens} tokens): ` +
        `within the ${local.claimed_unsettled} claimed and not yet settled (${local.claimed_unsettled_tokens} tokens) and the ${local.settled_recently} settled too recently for Lago's usage to be sure to count them (${local.settled_recently_tokens} tokens)`
    })
  }
  if (unexplained) {
    causes.push({
      cause: 'unexplained',
      events: Math.abs(lagoEvents - local.billable_events),
      message: `Lago counts ${lagoEvents} events (${lagoUnits.toString()} units) where ${local.billable_events} billable events (${local.billable_tokens} tokens) were forwarded` +
        (local.claimed_unsettled > 0 ? `, and ${local.claimed_unsettled} more (${local.claimed_unsettled_tokens} tokens) were claimed and not yet settled` : '')
    })
  }
  const mismatch = unexplained || (countsDiffer && withDead) || local.before_start > 0 || local.lago_error > 0
  return {
    ...base,
    period: { from: from.toISOString(), to: to.toISOString() },
    forwarded: { events: local.billable_events, total_tokens: local.billable_tokens, cost_usd: local.billable_cost },
    lago: { events_count: lagoEvents, units: lagoUnits.toString() },
    status: mismatch ? 'mismatch' : 'ok',
    causes,
    error: null
  }
}

export interface AuditFilter { customerId?: string, from?: Date, to?: Date }

/**
 * Customers of one organization to audit: those whose usage goes to a subscription, optionally only one, or only
 * those with events in [from, to).
 */
export async function customersToAudit (db: Kysely<Database>, organizationId: string, filter: AuditFilter): Promise<Array<{ customer: string, subscription: string }>> {
  let q = db.selectFrom('customers').select(['external_id', 'subscription_external_id'])
    .where('organization_id', '=', organizationId).where('subscription_external_id', 'is not', null)
  if (filter.customerId !== undefined) q = q.where('external_id', '=', filter.customerId)
  if (filter.from !== undefined || filter.to !== undefined) {
    q = q.where((eb) => eb.exists(eb.selectFrom('litellm_usage_events as e').select(sql`1`.as('one'))
      .whereRef('e.organization_id', '=', 'customers.organization_id')
      .whereRef('e.customer_external_id', '=', 'customers.external_id')
      .$if(filter.from !== undefined, (w) => w.where('e.timestamp', '>=', filter.from as Date))
      .$if(filter.to !== undefined, (w) => w.where('e.timestamp', '<', filter.to as Date))))
  }
  const rows = await q.orderBy('external_id').execute()
  return rows.map((r) => ({ customer: r.external_id, subscription: r.subscription_external_id as string }))
}

/** An audit of one organization (GET /api/billing/audit, and each organization's part of the periodic audit). */
export interface AuditReport {
  organization_id: string
  generated_at: string
  metric_code: string
  mismatches: number
  customers: CustomerAudit[]
}

export interface OrganizationAudit {
  db: Kysely<Database>
  organizationId: string
  /** The organization's own Lago. */
  lago: LagoUsageApi
  /** The organization's metric code (its own, else LAGO_METRIC_CODE). */
  metricCode: string
  /** Events settled this long before Lago is read may be missing from its usage without a mismatch (default 0). */
  lagoLagMs?: number
  /** Customers audited at once (each is two Lago calls). */
  concurrency?: number
  now?: () => Date
}

/**
 * Audits every customer of one organization against that organization's Lago. A Lago failure for one customer is
 * that customer's `error`, never the others'.
 */
export async function auditOrganization (o: OrganizationAudit, filter: AuditFilter = {}): Promise<AuditReport> {
  const targets = await customersToAudit(o.db, o.organizationId, filter)
  const concurrency = o.concurrency ?? 4
  const results: CustomerAudit[] = []
  for (let i = 0; i < targets.length; i += concurrency) {
    results.push(...await Promise.all(targets.slice(i, i + concurrency).map(async ({ customer, subscription }): Promise<CustomerAudit> => {
      try {
        return await auditCustomer(o.db, o.lago, o.metricCode, customer, subscription, o.organizationId, o.lagoLagMs)
      } catch (err) {
        return {
          customer_external_id: customer,
          subscription_external_id: subscription,
          period: null,
          forwarded: { events: 0, total_tokens: '0', cost_usd: '0' },
          lago: null,
          status: 'error',
          causes: [],
          error: `could not read Lago's usage: ${err instanceof Error ? err.message : String(err)}`
        }
      }
    })))
  }
  return {
    organization_id: o.organizationId,
    generated_at: (o.now?.() ?? new Date()).toISOString(),
    metric_code: o.metricCode,
    mismatches: results.filter((r) => r.status === 'mismatch').length,
    customers: results
  }
}
