// GET /api/billing/audit and /api/billing/audit/last: each organization audited against its own Lago, only by its
// own keys; the periodic audit of every organization; the causes a mismatch is explained by.
import t from 'tap'
import Big from 'big.js'
import type { FastifyInstance } from 'fastify'
import { seedEvent, sqlClient, uid } from '../../../helpers/app.js'
import { apiClient } from '../../../helpers/api.js'
import { ADMIN_KEY, buildForwarding, ingest, statusCounts, until } from '../../../helpers/forwarding.js'
import { ADMIN_API_KEY, buildTwoOrganizations, ingestAs, organizationCounts } from '../../../helpers/organizations.js'
import { raw } from '../../../helpers/lago.js'
import { buildWithLagoWebhooks, deliveredAndActedOn, subscribe } from '../../../helpers/lago-webhooks.js'

interface CustomerRow { customer_external_id: string, status: string, forwarded: { events: number, total_tokens: string }, lago: { events_count: number, units: string } | null, causes: Array<{ cause: string, events: number }> }
interface Report { organization_id: string, generated_at: string, metric_code: string, mismatches: number, customers: CustomerRow[] }

const now = (): string => new Date().toISOString()
const threeDaysAgo = (): string => new Date(Date.now() - 3 * 86_400_000).toISOString()
const tokensOf = (events: Array<Record<string, unknown>>): string => events.reduce((sum, e) => sum.plus(e.total_tokens as number), new Big(0)).toString()
const row = (report: Report, customer: string): CustomerRow | undefined => report.customers.find((c) => c.customer_external_id === customer)
const causes = (c: CustomerRow | undefined): Array<[string, number]> => (c?.causes ?? []).map((x) => [x.cause, x.events])

/** Subscribes a customer through the API with an organization's key (to the plan bootstrap made in its Lago). */
async function subscribeWith (app: FastifyInstance, key: string, customer: string): Promise<void> {
  const res = await apiClient(app, key).post('/api/customers', { external_id: customer, plan_code: 'ai_usage_plan' })
  if (res.statusCode !== 200) throw new Error(`subscribing ${customer}: ${res.statusCode} ${res.body}`)
}

/** Two organizations, default in Lago A and B in Lago B, each with customers subscribed and events forwarded. */
async function twoAudited (t: Parameters<typeof buildTwoOrganizations>[0], env: Record<string, string>) {
  const { app, simA, simB, b, tokenB } = await buildTwoOrganizations(t, { BOOTSTRAP_ON_START: 'true', ...env })
  const db = await sqlClient(t)
  const keyB = (await apiClient(app, ADMIN_API_KEY).post(`/api/organizations/${b}/api-keys`, { name: 'audit' })).json().api_key as string
  await until(() => app.bootstrap.state().status === 'done' && app.bootstrap.state(b).status === 'done', 'both organizations\' billing defaults')
  // The same customer id in both organizations (two customers), and one more in each.
  const shared = uid('cus-shared')
  const onlyA = uid('cus-a')
  const onlyB = uid('cus-b')
  for (const c of [shared, onlyA]) await subscribeWith(app, ADMIN_KEY, c)
  for (const c of [shared, onlyB]) await subscribeWith(app, keyB, c)
  const eventsA = [seedEvent({ customer_id: shared, timestamp: now(), total_tokens: 30, tokens_input: 10, tokens_output: 20 }), seedEvent({ customer_id: onlyA, timestamp: now() })]
  const eventsB = [
    seedEvent({ customer_id: shared, timestamp: now(), total_tokens: 107, tokens_input: 100, tokens_output: 7 }),
    seedEvent({ customer_id: shared, timestamp: now(), total_tokens: 5, tokens_input: 5, tokens_output: 0 }),
    seedEvent({ customer_id: onlyB, timestamp: now() })
  ]
  await ingest(app, eventsA)
  await ingestAs(app, tokenB, eventsB)
  await until(async () => (await organizationCounts(db, 'default', [shared, onlyA])).forwarded === 2 && (await organizationCounts(db, b, [shared, onlyB])).forwarded === 3, 'both organizations\' events to be forwarded')
  return { app, db, simA, simB, b, tokenB, keyB, shared, onlyA, onlyB, eventsA, eventsB }
}

t.test('each organization is audited against its own Lago and sees only its own customers; a problem in B is B\'s only', async (t) => {
  const { app, db, b, tokenB, keyB, shared, onlyA, onlyB, eventsA, eventsB } = await twoAudited(t, { BILLING_AUDIT_INTERVAL_MS: '0' })
  const apiA = apiClient(app, ADMIN_KEY)
  const apiB = apiClient(app, keyB)

  const cleanA = (await apiA.get('/api/billing/audit')).json() as Report
  const cleanB = (await apiB.get('/api/billing/audit')).json() as Report
  t.match([cleanA.organization_id, cleanA.mismatches, cleanB.organization_id, cleanB.mismatches], ['default', 0, b, 0], 'clean on both')
  t.same(cleanA.customers.map((c) => c.customer_external_id).sort(), [shared, onlyA].sort(), 'A\'s key sees A\'s customers only')
  t.same(cleanB.customers.map((c) => c.customer_external_id).sort(), [shared, onlyB].sort(), 'B\'s key sees B\'s customers only')
  const sharedA = row(cleanA, shared)
  const sharedB = row(cleanB, shared)
  t.same([sharedA?.status, sharedA?.forwarded.events, sharedA?.forwarded.total_tokens, sharedA?.lago?.events_count], ['ok', 1, tokensOf(eventsA.slice(0, 1)), 1], 'A\'s customer: A\'s events against A\'s Lago')
  t.same([sharedB?.status, sharedB?.forwarded.events, sharedB?.forwarded.total_tokens, sharedB?.lago?.events_count], ['ok', 2, tokensOf(eventsB.slice(0, 2)), 2], 'B\'s customer of the same id: B\'s events against B\'s Lago')
  t.ok(new Big(sharedB?.lago?.units ?? '-1').eq(tokensOf(eventsB.slice(0, 2))), 'B\'s Lago\'s units are B\'s tokens')

  // Planted in B: an event from before the subscription started. Lago B stores it and never bills it.
  const planted = seedEvent({ customer_id: shared, timestamp: threeDaysAgo() })
  await ingestAs(app, tokenB, [planted])
  await until(async () => (await organizationCounts(db, b, [shared])).forwarded === 3, 'the planted event to be forwarded')
  const foundB = (await apiB.get('/api/billing/audit')).json() as Report
  t.equal(foundB.mismatches, 1, 'B\'s audit finds it')
  t.same([row(foundB, shared)?.status, causes(row(foundB, shared))], ['mismatch', [['before_subscription_start', 1]]], 'with its cause')
  const afterA = (await apiA.get('/api/billing/audit')).json() as Report
  t.same([afterA.mismatches, row(afterA, shared)?.status, row(afterA, shared)?.forwarded.events], [0, 'ok', 1], 'A\'s customer of the same id is untouched')

  // A's key never reaches B's customers, filtered or not; an admin key reads B when it names it.
  t.same(((await apiA.get(`/api/billing/audit?customer_id=${onlyB}`)).json() as Report).customers, [], 'A\'s key: B\'s customer is not there')
  const admin = apiClient(app, ADMIN_API_KEY)
  const named = (await admin.get('/api/billing/audit', { 'x-organization-id': b })).json() as Report
  t.same([named.organization_id, named.mismatches], [b, 1], 'an admin key naming B reads B\'s audit')
  const one = (await apiB.get(`/api/billing/audit?customer_id=${onlyB}`)).json() as Report
  t.same(one.customers.map((c) => c.customer_external_id), [onlyB], 'per customer, within the organization')
})

t.test('the periodic audit covers every organization; its last result is served and counted per organization in the metrics', async (t) => {
  const { app, db, b, tokenB, keyB, shared, onlyA, onlyB } = await twoAudited(t, { BILLING_AUDIT_INTERVAL_MS: '200' })
  const apiA = apiClient(app, ADMIN_KEY)
  const apiB = apiClient(app, keyB)
  const planted = seedEvent({ customer_id: shared, timestamp: threeDaysAgo() })
  await ingestAs(app, tokenB, [planted])
  await until(async () => (await organizationCounts(db, b, [shared])).forwarded === 3, 'the planted event to be forwarded')

  // No GET /api/billing/audit here: only the periodic job can produce these. A report may predate the setup's
  // forwarding (a run began before it ended): wait for one that has seen every event forwarded, and assert on it.
  const lastWhen = async (api: typeof apiA, what: string, done: (r: Report) => boolean): Promise<Report> => {
    let seen: Report | undefined
    await until(async () => {
      const r = await api.get('/api/billing/audit/last')
      if (r.statusCode === 200 && done(r.json() as Report)) seen = r.json() as Report
      return seen !== undefined
    }, what)
    return seen as Report
  }
  const lastB = await lastWhen(apiB, 'a periodic audit of B that sees the planted event', (r) => causes(row(r, shared)).some(([cause]) => cause === 'before_subscription_start'))
  const settled = (r: Report, customer: string): boolean => row(r, customer)?.forwarded.events === 1 && row(r, customer)?.lago?.events_count === 1
  const lastA = await lastWhen(apiA, 'a periodic audit of A after its events were forwarded', (r) => settled(r, shared) && settled(r, onlyA))
  t.same([lastB.organization_id, row(lastB, shared)?.status, causes(row(lastB, shared))], [b, 'mismatch', [['before_subscription_start', 1]]], 'B\'s last audit, with the cause')
  t.same([lastA.organization_id, lastA.mismatches, row(lastA, shared)?.status, row(lastA, onlyA)?.status, row(lastA, onlyB)], ['default', 0, 'ok', 'ok', undefined], 'A\'s last audit: its own customers, clean, none of B\'s')
  t.same([row(lastB, onlyB)?.status, row(lastB, onlyA)], ['ok', undefined], 'B\'s: its own customers only')

  const metrics = (await app.inject({ method: 'GET', url: '/health/metrics' })).body
  t.match(metrics, new RegExp(`^billing_audit_mismatches\\{organization="${b}"\\} 1$`, 'm'), 'the gauge counts B\'s mismatch')
  t.match(metrics, /^billing_audit_mismatches\{organization="default"\} 0$/m, 'and none for A')
})

t.test('the periodic audit: an organization whose Lago is down reports errors for its customers and stops no other', async (t) => {
  const { app, simB, keyB, shared, onlyA, onlyB } = await twoAudited(t, { BILLING_AUDIT_INTERVAL_MS: '200' })
  const apiA = apiClient(app, ADMIN_KEY)
  const apiB = apiClient(app, keyB)
  simB.faults.outage(60_000, '503')
  t.teardown(() => simB.faults.clear())
  const since = new Date().toISOString()
  const last = async (api: typeof apiA): Promise<Report | null> => { const r = await api.get('/api/billing/audit/last'); return r.statusCode === 200 ? r.json() as Report : null }
  await until(async () => { const r = await last(apiB); return r !== null && r.generated_at > since && row(r, onlyB)?.status === 'error' }, 'a periodic audit of B during its outage')
  await until(async () => { const r = await last(apiA); return r !== null && r.generated_at > since }, 'a periodic audit of A after B\'s outage began')
  const lastB = await last(apiB) as Report
  const lastA = await last(apiA) as Report
  t.same([row(lastB, shared)?.status, row(lastB, onlyB)?.status, lastB.mismatches], ['error', 'error', 0], 'B: each customer an error, none taken for a mismatch')
  t.match(row(lastB, onlyB), { lago: null, error: /could not read Lago's usage/ })
  t.same([row(lastA, shared)?.status, row(lastA, onlyA)?.status, lastA.mismatches], ['ok', 'ok', 0], 'A audited as usual')
})

t.test('still_pending: events not yet in Lago are named, and alone are no mismatch; /last is 404 until an audit ran', async (t) => {
  const { app } = await buildForwarding(t, { FORWARDER_ENABLED: 'false', BILLING_AUDIT_INTERVAL_MS: '0' })
  const db = await sqlClient(t)
  const api = apiClient(app)
  await until(async () => (await app.inject('/health')).json().bootstrap.status === 'done', 'bootstrap')
  const none = await api.get('/api/billing/audit/last')
  t.match(none.json(), { statusCode: 404, code: 'billing_audit_not_run', message: /organization "default".*BILLING_AUDIT_INTERVAL_MS=0/ }, 'no audit yet: a clear 404')

  const customer = uid('cus-pending')
  await subscribe(app, customer)
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: now() }), seedEvent({ customer_id: customer, timestamp: now() })])
  t.same(await statusCounts(db, customer), { pending: 2 }, 'stored, not forwarded')
  const report = (await api.get('/api/billing/audit')).json() as Report
  const c = row(report, customer)
  t.same([c?.status, causes(c), c?.forwarded.events, c?.lago?.events_count], ['ok', [['still_pending', 2]], 0, 0], 'still_pending, informative only')
  t.equal(report.mismatches, 0)

  const stored = await api.get('/api/billing/audit/last')
  t.equal(stored.statusCode, 200, 'an unfiltered audit on request is stored too')
  t.same(stored.json(), report, 'the same report, read without calling Lago')
  await api.get(`/api/billing/audit?customer_id=${customer}`)
  t.same((await api.get('/api/billing/audit/last')).json().generated_at, report.generated_at, 'a filtered audit does not replace it')
})

t.test('lago_error: events Lago reported it cannot bill make a mismatch with that cause', async (t) => {
  const { app, sim } = await buildWithLagoWebhooks(t)
  const db = await sqlClient(t)
  const customer = uid('cus-lago-error')
  await subscribe(app, customer)
  await deliveredAndActedOn(app, sim)
  // Lago no longer knows the metric: it stores the events (200) and reports them in an events.errors webhook.
  t.equal((await raw(sim, 'DELETE', '/api/v1/billable_metrics/ai_usage')).status, 200)
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: now() }), seedEvent({ customer_id: customer, timestamp: now() })])
  await until(async () => (await statusCounts(db, customer)).forwarded === 2, 'the events to be forwarded')
  sim.state.validateEvents()
  await deliveredAndActedOn(app, sim)
  t.same(await statusCounts(db, customer), { lago_error: 2 })

  const report = (await apiClient(app).get('/api/billing/audit')).json() as Report
  const c = row(report, customer)
  t.same([c?.status, causes(c), c?.forwarded.events], ['mismatch', [['lago_error', 2]], 0], 'a mismatch, explained by lago_error')
  t.equal(report.mismatches, 1)
})

t.test('GET /api/billing/audit/last says why there is none: not run yet, or an organization the periodic audit skips', async (t) => {
  const { app, b } = await buildTwoOrganizations(t, { BILLING_AUDIT_INTERVAL_MS: '3600000', BOOTSTRAP_ON_START: 'false' })
  const admin = apiClient(app, ADMIN_API_KEY)
  const ofB = async (): Promise<{ statusCode: number, code: string, message: string }> => (await admin.get('/api/billing/audit/last', { 'x-organization-id': b })).json()
  t.match(await ofB(), { statusCode: 404, code: 'billing_audit_not_run', message: /runs every 3600000 ms/ }, 'covered: it says when it runs')
  t.equal((await admin.post(`/api/organizations/${b}/disable`)).statusCode, 200)
  t.match(await ofB(), { statusCode: 404, code: 'billing_audit_not_run', message: /does not cover this organization \(it is disabled or has no Lago API key\)/ },
    'disabled: never audited periodically, and it says so')
})
