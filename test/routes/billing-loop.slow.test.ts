// The billing loop end to end: the service forwards to the Lago simulator, the simulator answers with its
// webhooks, the service acts on them. Slow lane: each test starts a simulator and a listening service.
import t from 'tap'
import Big from 'big.js'
import { seedEvent, sqlClient, uid } from '../helpers/app.js'
import { apiClient } from '../helpers/api.js'
import { ingest, statusCounts, storedFor, until } from '../helpers/forwarding.js'
import { raw } from '../helpers/lago.js'
import { buildWithLagoWebhooks, deliveredAndActedOn, subscribe } from '../helpers/lago-webhooks.js'

const now = (): string => new Date().toISOString()

t.test('events.errors: the named events become lago_error, counted in the stats and metrics, and a resend after the fix bills nothing twice', async (t) => {
  const { app, sim } = await buildWithLagoWebhooks(t)
  const db = await sqlClient(t)
  const api = apiClient(app)
  await subscribe(app, 'cus-err')
  await deliveredAndActedOn(app, sim)
  // Lago no longer knows the metric: it still stores the events (200) and reports them later.
  t.equal((await raw(sim, 'DELETE', '/api/v1/billable_metrics/ai_usage')).status, 200)
  const events = [1, 2, 3].map(() => seedEvent({ customer_id: 'cus-err', request_id: uid('err'), timestamp: now() }))
  await ingest(app, events)
  await until(async () => (await statusCounts(db, 'cus-err')).forwarded === 3, 'the events to be forwarded')

  t.same(sim.state.validateEvents()?.invalid_code.sort(), events.map((e) => e.request_id).sort(), 'Lago\'s hourly validation names them invalid_code')
  await deliveredAndActedOn(app, sim)
  t.same(await statusCounts(db, 'cus-err'), { lago_error: 3 }, 'all three are lago_error')
  const { rows } = await db.query("SELECT last_error FROM litellm_usage_events WHERE customer_external_id = 'cus-err'")
  t.ok(rows.every((r) => r.last_error.kind === 'lago_error' && r.last_error.reason === 'invalid_code'), 'Lago\'s reason is kept')

  const stats = (await api.get('/webhooks/stats')).json()
  t.equal(stats.totals.lago_error, 3, 'GET /webhooks/stats counts them')
  const metrics = (await app.inject({ method: 'GET', url: '/health/metrics' })).body
  t.match(metrics, /^usage_events_lago_error 3$/m, 'and the metrics')

  // An event.error about a duplicate transaction_id is no error of ours (Lago bills the first copy).
  const [first] = events.map((e) => e.request_id as string)
  await db.query("UPDATE litellm_usage_events SET status = 'forwarded' WHERE request_id = $1", [first])
  sim.webhooks.emit('event.error', 'event_error', { status: 422, error: 'Unprocessable entity', message: JSON.stringify({ transaction_id: ['value_already_exist'] }), event: { transaction_id: first } })
  await deliveredAndActedOn(app, sim)
  t.same((await db.query('SELECT status FROM litellm_usage_events WHERE request_id = $1', [first])).rows, [{ status: 'forwarded' }], 'a duplicate notice changes nothing')

  // The cause is fixed in Lago; the events are resent verbatim and Lago, holding their transaction_ids, stores nothing twice.
  sim.state.createBillableMetric({ billable_metric: { name: 'Tokens', code: 'ai_usage', aggregation_type: 'sum_agg', field_name: 'total_tokens' } })
  const retried = await api.post('/webhooks/retry', { statuses: ['lago_error'] })
  t.same(retried.json(), { retried: 2 })
  await until(async () => (await statusCounts(db, 'cus-err')).forwarded === 3, 'the resent events to be settled')
  t.same([...storedFor(sim, events.map((e) => e.request_id)).values()], [1, 1, 1], 'Lago holds each event once')
})

t.test('a terminated subscription: new events wait as unmapped instead of going to it, and go to the customer\'s next subscription', async (t) => {
  const { app, sim } = await buildWithLagoWebhooks(t)
  const db = await sqlClient(t)
  await subscribe(app, 'cus-term')
  await ingest(app, [seedEvent({ customer_id: 'cus-term', request_id: uid('term'), timestamp: now() })])
  await until(async () => (await statusCounts(db, 'cus-term')).forwarded === 1, 'the first event to be forwarded')

  t.equal((await raw(sim, 'DELETE', '/api/v1/subscriptions/cus-term')).status, 200, 'terminated in Lago')
  await deliveredAndActedOn(app, sim)
  const customer = (await db.query("SELECT subscription_external_id, subscription_ended_reason FROM customers WHERE external_id = 'cus-term'")).rows[0]
  t.equal(customer.subscription_external_id, null, 'the stored subscription is no longer used')
  t.match(customer.subscription_ended_reason, /terminated/)

  const late = seedEvent({ customer_id: 'cus-term', request_id: uid('late'), timestamp: now() })
  await ingest(app, [late])
  await until(async () => (await statusCounts(db, 'cus-term')).unmapped === 1, 'the new event to wait as unmapped')
  const waiting = (await db.query('SELECT last_error FROM litellm_usage_events WHERE request_id = $1', [late.request_id])).rows[0]
  t.match(waiting.last_error.message, /terminated subscription "cus-term"/, 'with the reason')
  t.equal(storedFor(sim, [late.request_id]).size, 0, 'nothing was sent to Lago for it')
  const active = (await raw(sim, 'GET', '/api/v1/subscriptions?external_customer_id=cus-term')).json()
  t.equal(active.subscriptions.length, 0, 'and no subscription was provisioned behind the operator\'s back')

  await subscribe(app, 'cus-term')
  await until(async () => (await statusCounts(db, 'cus-term')).forwarded === 2, 'the waiting event to go to the new subscription')
  t.equal(storedFor(sim, [late.request_id]).get(late.request_id as string), 1)
})

t.test('invoices are kept from Lago\'s webhooks and answered locally while Lago is down', async (t) => {
  const { app, sim } = await buildWithLagoWebhooks(t)
  const db = await sqlClient(t)
  const api = apiClient(app)
  await subscribe(app, 'cus-inv')
  await ingest(app, [seedEvent({ customer_id: 'cus-inv', request_id: uid('inv'), timestamp: now() })])
  await until(async () => (await statusCounts(db, 'cus-inv')).forwarded === 1, 'the event to be forwarded')
  const { invoice } = sim.state.closePeriod('cus-inv')
  sim.state.updateInvoice(invoice.lago_id, { payment_status: 'succeeded' })
  await deliveredAndActedOn(app, sim)

  const fromLago = await api.get('/api/customers/cus-inv/invoices')
  t.equal(fromLago.statusCode, 200)
  t.equal(fromLago.json().source, 'lago')
  t.equal(fromLago.headers['x-invoices-source'], 'lago')

  sim.faults.outage(60_000, '503')
  t.teardown(() => sim.faults.clear())
  const local = await api.get('/api/customers/cus-inv/invoices')
  t.equal(local.statusCode, 200, 'answered while Lago is down')
  t.equal(local.json().source, 'local', 'from the local record')
  t.equal(local.headers['x-invoices-source'], 'local')
  t.same(local.json().invoices.map((i: Record<string, unknown>) => [i.lago_id, i.number, i.status, i.payment_status, i.total_amount_cents, i.currency]),
    [[invoice.lago_id, invoice.number, 'finalized', 'succeeded', invoice.total_amount_cents, invoice.currency]], 'as Lago\'s last webhook described it')
  const unknown = await api.get('/api/customers/nobody/invoices')
  t.ok([502, 503].includes(unknown.statusCode), `no local record: Lago's failure is the answer (${unknown.statusCode})`)
})

t.test('the billing audit: none on a clean run, and a planted event before the subscription\'s start is found', async (t) => {
  const { app, sim } = await buildWithLagoWebhooks(t)
  const db = await sqlClient(t)
  const api = apiClient(app)
  await subscribe(app, 'cus-audit')
  await subscribe(app, 'cus-clean')
  await deliveredAndActedOn(app, sim)
  const events = [
    seedEvent({ customer_id: 'cus-audit', request_id: uid('a'), timestamp: now(), tokens_input: 10, tokens_output: 20, total_tokens: 30 }),
    seedEvent({ customer_id: 'cus-audit', request_id: uid('a'), timestamp: now(), tokens_input: 100, tokens_output: 7, total_tokens: 107 }),
    seedEvent({ customer_id: 'cus-clean', request_id: uid('c'), timestamp: now(), tokens_input: 5, tokens_output: 5, total_tokens: 10 })
  ]
  await ingest(app, events)
  await until(async () => (await statusCounts(db, 'cus-audit')).forwarded === 2 && (await statusCounts(db, 'cus-clean')).forwarded === 1, 'the events to be forwarded')

  const clean = await api.get('/api/billing/audit')
  t.equal(clean.statusCode, 200)
  t.equal(clean.json().mismatches, 0, 'a clean run reports no mismatch')
  const auditRow = clean.json().customers.find((c: { customer_external_id: string }) => c.customer_external_id === 'cus-audit')
  const tokens = events.filter((e) => e.customer_id === 'cus-audit').reduce((sum, e) => sum.plus(e.total_tokens as number), new Big(0))
  t.same([auditRow.status, auditRow.forwarded.events, auditRow.forwarded.total_tokens, auditRow.lago.events_count], ['ok', 2, tokens.toString(), 2])
  t.ok(new Big(auditRow.lago.units).eq(tokens), 'Lago\'s units are the tokens forwarded')

  // Planted: an event from three days ago, before the subscription started. Lago stores it and never bills it.
  const planted = seedEvent({ customer_id: 'cus-audit', request_id: uid('old'), timestamp: new Date(Date.now() - 3 * 86_400_000).toISOString() })
  await ingest(app, [planted])
  await until(async () => (await statusCounts(db, 'cus-audit')).forwarded === 3, 'the planted event to be forwarded')
  const warning = (await db.query('SELECT billing_warning FROM litellm_usage_events WHERE request_id = $1', [planted.request_id])).rows[0].billing_warning
  t.equal(warning?.kind, 'before_subscription_start', 'flagged when it was forwarded')

  const found = (await api.get('/api/billing/audit')).json()
  t.equal(found.mismatches, 1, 'one customer disagrees')
  const bad = found.customers.find((c: { customer_external_id: string }) => c.customer_external_id === 'cus-audit')
  t.equal(bad.status, 'mismatch')
  t.same(bad.causes.map((c: { cause: string, events: number }) => [c.cause, c.events]), [['before_subscription_start', 1]], 'with its likely cause')
  t.equal(found.customers.find((c: { customer_external_id: string }) => c.customer_external_id === 'cus-clean').status, 'ok')
  const one = (await api.get('/api/billing/audit?customer_id=cus-clean')).json()
  t.same(one.customers.map((c: { customer_external_id: string }) => c.customer_external_id), ['cus-clean'], 'per customer')
})
