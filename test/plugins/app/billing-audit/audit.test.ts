// auditOrganization (plain function) on the real database with a stand-in Lago: the organization's rows only,
// the organization's metric only, one customer's Lago failure is that customer's alone.
import t from 'tap'
import { sql, type Kysely } from 'kysely'
import { build, uid } from '../../../helpers/app.js'
import { auditOrganization, type LagoUsageApi } from '../../../../plugins/app/billing-audit/audit.js'
import { LagoApiError } from '../../../../plugins/app/lago/errors.js'
import type { Database } from '../../../../db/database.js'

const DAY = 86_400_000

/**
 * One customer's audit against a stand-in Lago whose current usage of the metric is `eventsCount` events and `units`
 * tokens (a subscription started a day ago, a period around now): its status and causes as "cause:events".
 * `meanwhile` runs after Lago was read and before the local counts (a settle in between).
 */
async function auditOne (db: Kysely<Database>, customer: string, eventsCount: number, units: string, options: { lagoLagMs?: number, meanwhile?: () => Promise<void> } = {}): Promise<[string, string[]]> {
  const lago: LagoUsageApi = {
    getSubscription: async () => ({ started_at: new Date(Date.now() - DAY).toISOString(), status: 'active' }),
    getCurrentUsage: async () => {
      const answer = {
        from_datetime: new Date(Date.now() - 2 * DAY).toISOString(),
        to_datetime: new Date(Date.now() + 20 * DAY).toISOString(),
        charges_usage: [{ billable_metric: { code: 'tokens', aggregation_type: 'sum_agg' }, events_count: eventsCount, units }]
      }
      await options.meanwhile?.()
      return answer as never
    }
  }
  const c = (await auditOrganization({ db, organizationId: 'default', lago, metricCode: 'tokens', lagoLagMs: options.lagoLagMs }, { customerId: customer })).customers[0]
  return [c.status, c.causes.map((x) => `${x.cause}:${x.events}`)]
}

/** A service (forwarder off) and one default-organization customer whose usage goes to `sub-<customer>`. */
async function subscribedCustomer (t: Parameters<typeof build>[0], prefix: string): Promise<{ db: Kysely<Database>, customer: string, subscription: string }> {
  const app = await build(t, { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', BILLING_AUDIT_INTERVAL_MS: '0' })
  const customer = uid(prefix)
  const subscription = `sub-${customer}`
  await app.db.insertInto('customers').values({ organization_id: 'default', external_id: customer, subscription_external_id: subscription, plan_code: 'p', provisioned_by: 'api' }).execute()
  return { db: app.db, customer, subscription }
}

t.test('an organization\'s audit reads its own customers and events, its metric\'s charges, and isolates a failing customer', async (t) => {
  const app = await build(t, { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', BILLING_AUDIT_INTERVAL_MS: '0' })
  const db = app.db
  const other = uid('org').toLowerCase()
  await app.organizations.create({ id: other, name: 'Other' })
  const [ok, failing, gone] = [uid('cus-ok'), uid('cus-failing'), uid('cus-gone')]
  const periodStart = new Date(Date.now() - 2 * DAY)
  const periodEnd = new Date(Date.now() + 20 * DAY)
  const startedAt = new Date(Date.now() - 1 * DAY)

  for (const [organization, customer] of [['default', ok], ['default', failing], ['default', gone], [other, ok]]) {
    await db.insertInto('customers').values({ organization_id: organization, external_id: customer, subscription_external_id: `sub-${customer}`, plan_code: 'p', provisioned_by: 'api' }).execute()
  }
  // ok has 2 forwarded events in default (40 tokens) and 5 in the other organization (which must not count).
  const store = async (organization: string, customer: string, tokens: number, status: string, at = new Date()): Promise<void> => {
    await sql`INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, tokens_input, tokens_output, total_tokens, cost_usd, "timestamp", source, fingerprint, status, external_subscription_id, processed_at)
              VALUES (${organization}, ${uid()}, ${customer}, 'm', 'p', ${tokens}, 0, ${tokens}, 0.5, ${at}, 'test', md5(${uid()}), ${status}, ${status === 'pending' ? null : `sub-${customer}`}, ${status === 'pending' ? null : new Date()})`.execute(db)
  }
  await store('default', ok, 15, 'forwarded')
  await store('default', ok, 25, 'forwarded')
  await store('default', ok, 9, 'pending')
  for (let i = 0; i < 5; i++) await store(other, ok, 1000, 'forwarded')

  const calls: string[] = []
  const lago: LagoUsageApi = {
    getSubscription: async (id) => {
      calls.push(`subscription ${id}`)
      if (id === `sub-${gone}`) throw new LagoApiError({ method: 'GET', path: `/api/v1/subscriptions/${id}`, status: 404, error: 'Not Found', code: 'subscription_not_found', errorDetails: null, retryAfterMs: null, rateLimit: null, body: null })
      return { started_at: startedAt.toISOString(), status: 'active' }
    },
    getCurrentUsage: async (customer) => {
      if (customer === failing) throw new Error('connection reset')
      return {
        from_datetime: periodStart.toISOString(),
        to_datetime: periodEnd.toISOString(),
        charges_usage: [
          { billable_metric: { code: 'tokens', aggregation_type: 'sum_agg' }, events_count: 2, units: '40.0' },
          { billable_metric: { code: 'something_else', aggregation_type: 'count_agg' }, events_count: 99, units: '99' }
        ]
      } as never
    }
  }
  const report = await auditOrganization({ db, organizationId: 'default', lago, metricCode: 'tokens', concurrency: 2, now: () => new Date('2026-11-26T08:00:00Z') }, {})
  const mine = report.customers.filter((c) => [ok, failing, gone].includes(c.customer_external_id))
  t.same([report.organization_id, report.metric_code, report.generated_at], ['default', 'tokens', '2026-11-26T08:00:00.000Z'])
  t.equal(mine.length, 3, 'its three customers, not the other organization\'s customer of the same id')
  const byId = Object.fromEntries(mine.map((c) => [c.customer_external_id, c]))
  t.match(byId[ok], { status: 'ok', forwarded: { events: 2, total_tokens: '40' }, lago: { events_count: 2, units: '40' }, causes: [{ cause: 'still_pending', events: 1 }], error: null },
    'default\'s events only (2 forwarded, 40 tokens), against the metric\'s charge only; the pending one named')
  t.match(byId[failing], { status: 'error', lago: null, error: /could not read Lago's usage: connection reset/ }, 'a failing customer is an error of its own')
  t.match(byId[gone], { status: 'error', error: /no active subscription/ }, 'a subscription Lago does not have')

  const theirs = await auditOrganization({ db, organizationId: other, lago, metricCode: 'tokens' }, {})
  t.same(theirs.customers.map((c) => c.customer_external_id), [ok], 'the other organization: its one customer')
  t.match(theirs.customers[0], { status: 'mismatch', forwarded: { events: 5, total_tokens: '5000' }, causes: [{ cause: 'unexplained', events: 3 }] },
    'its own 5 events, against a Lago that counts 2: unexplained')
  t.same((await auditOrganization({ db, organizationId: other, lago, metricCode: 'tokens' }, { customerId: failing })).customers, [], 'a customer of another organization is not found by id')
})

t.test('forwarding in progress: Lago ahead by events claimed and not yet settled, or behind by events settled after it was read, is no mismatch; beyond either, it is', async (t) => {
  const { db, customer, subscription } = await subscribedCustomer(t, 'cus-in-flight')
  /** An event as the forwarder leaves it: `inRow` puts the subscription (and a body, unless forwarded) in the event's row. */
  const store = async (tokens: number, status: string, inRow = false): Promise<{ id: string, received_at: string }> => (await sql<{ id: string, received_at: string }>`
    INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, tokens_input, tokens_output, total_tokens, cost_usd, "timestamp", source, fingerprint, status, external_subscription_id, lago_payload, processed_at)
    VALUES ('default', ${uid()}, ${customer}, 'm', 'p', ${tokens}, 0, ${tokens}, 0.5, now(), 'test', md5(${uid()}), ${status}, ${inRow ? subscription : null},
            ${inRow && status !== 'forwarded' ? sql`'{"transaction_id": "t"}'::jsonb` : null}, ${status === 'forwarded' ? sql`now()` : null})
    RETURNING id, received_at::text AS received_at`.execute(db)).rows[0] // to the microsecond, as the forwarder reads it
  // A claim holds the subscription and the frozen body until the send is settled.
  const claim = async (e: { id: string, received_at: string }, sub: string): Promise<void> => {
    await sql`INSERT INTO usage_event_claims (event_id, received_at, organization_id, worker, lease_expires_at, external_subscription_id, lago_payload)
              VALUES (${e.id}, ${e.received_at}::timestamptz, 'default', 'w', now() + interval '1 minute', ${sub}, '{"transaction_id": "t"}'::jsonb)`.execute(db)
  }
  await store(10, 'forwarded', true)
  await claim(await store(5, 'pending'), subscription)
  await claim(await store(7, 'pending'), subscription)
  await store(4, 'failed', true) // a send that failed (Lago may hold it): its body and subscription moved into the row
  await store(100, 'pending') // never claimed
  await claim(await store(200, 'pending'), `sub-other-${customer}`) // claimed for another subscription
  const settling = await store(3, 'pending')
  await claim(settling, subscription)

  const audit = async (eventsCount: number, units: string, meanwhile?: () => Promise<void>): Promise<[string, string[]]> => await auditOne(db, customer, eventsCount, units, { meanwhile })
  // Expected by hand. Forwarded: 1 event, 10 tokens. Claimed for this subscription and not settled: 4 events (5, 7, 3
  // in claims; 4 in its row), 19 tokens. Pending or failed in all: 6 (those four, the unclaimed 100 and the 200).
  t.same(await audit(1, '10'), ['ok', ['still_pending:6']], 'Lago level with the forwarded events')
  t.same(await audit(2, '17'), ['ok', ['still_pending:6', 'forwarding_in_progress:1']], 'Lago ahead by one claimed event (the 7-token one)')
  t.same(await audit(5, '29'), ['ok', ['still_pending:6', 'forwarding_in_progress:4']], 'ahead by all four, the one whose body is in its row too')
  t.same(await audit(6, '29'), ['mismatch', ['still_pending:6', 'unexplained:5']], 'ahead by more events than were claimed (tokens within)')
  t.same(await audit(2, '110'), ['mismatch', ['still_pending:6', 'unexplained:1']], 'ahead by the unclaimed event\'s tokens')
  t.same(await audit(2, '210'), ['mismatch', ['still_pending:6', 'unexplained:1']], 'ahead by an event claimed for another subscription')
  t.same(await audit(0, '0'), ['mismatch', ['still_pending:6', 'unexplained:1']], 'behind the events forwarded before Lago was read')

  // The 3-token event is settled after Lago was read: Lago may not have had it, and may have.
  const settle = async (): Promise<void> => {
    await sql`DELETE FROM usage_event_claims WHERE event_id = ${settling.id}`.execute(db)
    await sql`UPDATE litellm_usage_events SET status = 'forwarded', processed_at = now(), external_subscription_id = ${subscription} WHERE id = ${settling.id}`.execute(db)
  }
  t.same(await audit(1, '10', settle), ['ok', ['still_pending:5', 'forwarding_in_progress:1']], 'Lago behind by the event settled after it was read')
  t.same(await audit(0, '0'), ['mismatch', ['still_pending:5', 'unexplained:2']], 'once settled before the read, Lago lacking it is a mismatch')
  t.same(await audit(2, '13'), ['ok', ['still_pending:5']], 'and Lago having it agrees')
})

t.test('Lago behind by events settled within lagoLagMs before it was read (its usage counts them from a background job) is no mismatch; by older ones, it is', async (t) => {
  const { db, customer, subscription } = await subscribedCustomer(t, 'cus-lag')
  for (const [tokens, ago] of [[6, '30 seconds'], [8, '10 minutes']] as const) {
    await sql`INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, tokens_input, tokens_output, total_tokens, cost_usd, "timestamp", source, fingerprint, status, external_subscription_id, processed_at)
              VALUES ('default', ${uid()}, ${customer}, 'm', 'p', ${tokens}, 0, ${tokens}, 0.5, now() - interval '1 hour', 'test', md5(${uid()}), 'forwarded', ${subscription}, now() - ${ago}::interval)`.execute(db)
  }
  const audit = async (eventsCount: number, units: string, lagoLagMs: number): Promise<[string, string[]]> => await auditOne(db, customer, eventsCount, units, { lagoLagMs })
  // By hand: forwarded 2 events, 14 tokens; settled 30 s ago: 1 event of 6 tokens; 10 minutes ago: 1 of 8.
  t.same(await audit(1, '8', 60_000), ['ok', ['forwarding_in_progress:1']], 'missing the event settled 30 s before, with a minute of lag allowed')
  t.same(await audit(1, '8', 0), ['mismatch', ['unexplained:1']], 'the same without lag allowed')
  t.same(await audit(1, '6', 60_000), ['mismatch', ['unexplained:1']], 'missing the event settled 10 minutes before')
  t.same(await audit(2, '14', 60_000), ['ok', []], 'both counted')
})

t.test('Lago ahead by events given up on after sends with no answer (dead, exhausted): a mismatch named for them, not unexplained', async (t) => {
  const { db, customer, subscription } = await subscribedCustomer(t, 'cus-dead')
  // As the forwarder leaves them: a dead event's body and subscription are in its row, the reason in last_error.
  for (const [tokens, status, kind] of [[10, 'forwarded', null], [4, 'dead', 'exhausted'], [9, 'dead', 'rejected']] as const) {
    await sql`INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, tokens_input, tokens_output, total_tokens, cost_usd, "timestamp", source, fingerprint, status, external_subscription_id, lago_payload, last_error, processed_at)
              VALUES ('default', ${uid()}, ${customer}, 'm', 'p', ${tokens}, 0, ${tokens}, 0.5, now(), 'test', md5(${uid()}), ${status}, ${subscription}, '{"transaction_id": "t"}'::jsonb,
                      ${kind === null ? null : JSON.stringify({ kind, message: 'm' })}::jsonb, ${status === 'forwarded' ? sql`now() - interval '1 hour'` : null})`.execute(db)
  }
  const audit = async (eventsCount: number, units: string): Promise<[string, string[]]> => await auditOne(db, customer, eventsCount, units)
  // By hand: forwarded 1 event, 10 tokens; dead after sends with no answer: 1 of 4 tokens; dead, refused by Lago: 1 of 9.
  t.same(await audit(1, '10'), ['ok', []], 'Lago without the dead events: nothing to say')
  t.same(await audit(2, '14'), ['mismatch', ['dead_maybe_in_lago:1']], 'Lago holding the one given up on: named')
  t.same(await audit(2, '19'), ['mismatch', ['unexplained:1']], 'Lago ahead by the tokens of the one it refused: unexplained')
})
