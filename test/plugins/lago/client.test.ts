import t from 'tap'
import { LagoClient } from '../../../plugins/app/lago/client.js'
import { classifyLagoError, LagoApiError, LagoNotConfiguredError, LagoUnavailableError } from '../../../plugins/app/lago/errors.js'
import { clientFor, seedCatalog, simulator, usageEvent } from '../../helpers/lago.js'
import { freePort } from '../../../scripts/free-port.js'

const BATCH = 'POST /api/v1/events/batch'

/** Runs fn and returns what it threw (failing the test when it did not throw). */
async function thrown (t: { fail: (message: string) => unknown }, fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
  } catch (err) {
    return err
  }
  t.fail('expected the call to throw')
  return undefined
}

t.test('events: single and batch return Lago objects; one attempt each is observed', async (t) => {
  const sim = await simulator(t)
  const { client, attempts } = clientFor(t, sim)
  await seedCatalog(client)
  attempts.length = 0
  const one = await client.createEvent(usageEvent('tx-1', 'sub-1'))
  t.match(one, { transaction_id: 'tx-1', external_subscription_id: 'sub-1', code: 'ai_usage', lago_customer_id: null, precise_total_amount_cents: '0.375' })
  t.match(one.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO timestamp with milliseconds')
  const batch = await client.createBatchEvents([usageEvent('tx-2', 'sub-1'), usageEvent('tx-3', 'sub-1')])
  t.same(batch.map((e) => e.transaction_id), ['tx-2', 'tx-3'], 'in input order')
  t.same((await client.getEvent('tx-2')).transaction_id, 'tx-2')
  const list = await client.listEvents({ external_subscription_id: 'sub-1', per_page: 2 })
  t.equal(list.events.length, 2)
  t.match(list.meta, { current_page: 1, next_page: 2, total_count: 3, total_pages: 2 })

  t.same(attempts.map((a) => [a.operation, a.method, a.statusCode, a.eventCount]), [
    ['createEvent', 'POST', 200, 1],
    ['createBatchEvents', 'POST', 200, 2],
    ['findEvent', 'GET', 200, undefined],
    ['findAllEvents', 'GET', 200, undefined]
  ])
  t.ok(attempts.every((a) => a.durationMs >= 0 && a.error === undefined))
  t.equal(attempts[3].path, '/api/v1/events?external_subscription_id=sub-1&per_page=2')
})

t.test('a repeat is a 422 value_already_exist; a refused batch stores nothing and names each index', async (t) => {
  const sim = await simulator(t)
  const { client, attempts } = clientFor(t, sim)
  await client.createEvent(usageEvent('dup', 'sub-1'))
  const repeat = await thrown(t, () => client.createEvent(usageEvent('dup', 'sub-1')))
  t.ok(repeat instanceof LagoApiError)
  const err = repeat as LagoApiError
  t.match(err, { status: 422, error: 'Unprocessable Entity', code: 'validation_errors' })
  t.same(err.fieldErrors(), { transaction_id: ['value_already_exist'] })
  t.equal(classifyLagoError(err), 'permanent')
  t.equal(attempts.at(-1)?.error, err, 'the observer sees the error the call throws')

  const before = sim.state.eventCount
  const batch = await thrown(t, () => client.createBatchEvents([usageEvent('new-1', 'sub-1'), usageEvent('dup', 'sub-1'), usageEvent('new-2', 'sub-1', {}, { timestamp: '2026-01-01T00:00:00Z' })])) as LagoApiError
  t.same(Object.fromEntries(batch.eventErrors() ?? []), { 1: { transaction_id: ['value_already_exist'] }, 2: { timestamp: ['invalid_format'] } })
  t.equal(sim.state.eventCount, before, 'atomic: nothing of the batch was stored')

  const tooMany = await thrown(t, () => client.createBatchEvents(Array.from({ length: 101 }, (_, i) => usageEvent(`m-${i}`, 'sub-1')))) as LagoApiError
  t.same(tooMany.fieldErrors(), { events: ['too_many_events'] })
  t.equal(tooMany.eventErrors(), null)
})

t.test('401 with a wrong key is a credentials error', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim, { apiKey: 'wrong' })
  const err = await thrown(t, () => client.listCustomers()) as LagoApiError
  t.match(err, { status: 401, error: 'Unauthorized', code: null })
  t.same(err.body, { status: 401, error: 'Unauthorized' })
  t.equal(classifyLagoError(err), 'credentials')
})

t.test('without an API key nothing is sent and the error says why', async (t) => {
  const sim = await simulator(t)
  const client = new LagoClient({ baseUrl: sim.url })
  t.teardown(() => client.close())
  t.notOk(client.configured)
  const err = await thrown(t, () => client.createEvent(usageEvent('x', 'sub-1')))
  t.ok(err instanceof LagoNotConfiguredError)
  t.match((err as Error).message, /LAGO_API_KEY is not set/)
  t.equal(sim.requests.total, 0, 'no request reached Lago')
})

t.test('customers: upsert, get, list with filters, delete terminates subscriptions; 404 is distinguishable', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  const created = await client.upsertCustomer({ external_id: 'acme', name: 'Acme', email: 'billing@acme.test', currency: 'USD', country: 'FR' })
  t.match(created, { external_id: 'acme', name: 'Acme', email: 'billing@acme.test', currency: 'USD', country: 'FR', applicable_timezone: 'UTC' })
  const updated = await client.upsertCustomer({ external_id: 'acme', city: 'Paris' })
  t.equal(updated.lago_id, created.lago_id, 'the same customer')
  t.match(updated, { name: 'Acme', city: 'Paris' }, 'a partial update keeps the other fields')
  await client.upsertCustomer({ external_id: 'other', name: 'Other', currency: 'EUR' })
  t.same((await client.getCustomer('acme')).lago_id, created.lago_id)
  const usd = await client.listCustomers({ 'currencies[]': ['USD'] })
  t.same(usd.customers.map((c) => c.external_id), ['acme'])
  t.equal((await client.listCustomers({ search_term: 'oth' })).customers[0].external_id, 'other')

  await client.createBillableMetric({ name: 'm', code: 'ai_usage', aggregation_type: 'count_agg' })
  await client.createPlan({ name: 'p', code: 'p', interval: 'monthly', amount_cents: 0, amount_currency: 'USD', pay_in_advance: false })
  await client.createSubscription({ external_customer_id: 'acme', plan_code: 'p', external_id: 'acme-sub' })
  const deleted = await client.deleteCustomer('acme')
  t.equal(deleted.external_id, 'acme')
  const terminated = await client.getSubscription('acme-sub', { status: 'terminated' })
  t.equal(terminated.status, 'terminated', 'deleting the customer terminated its subscription')

  const missing = await thrown(t, () => client.getCustomer('acme')) as LagoApiError
  t.match(missing, { status: 404, code: 'customer_not_found', isNotFound: true })
  t.equal(classifyLagoError(missing), 'permanent')
  const invalid = await thrown(t, () => client.upsertCustomer({ external_id: '', email: 'nope' })) as LagoApiError
  t.same(invalid.fieldErrors(), { external_id: ['value_is_mandatory'], email: ['invalid_email_format'] })
})

t.test('billable metrics and plans: create, get, list, update, delete, with Lago validation', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  const metric = await client.createBillableMetric({ name: 'Tokens', code: 'tokens', aggregation_type: 'sum_agg', field_name: 'total_tokens' })
  t.match(metric, { code: 'tokens', aggregation_type: 'sum_agg', field_name: 'total_tokens', recurring: false })
  t.equal((await client.getBillableMetric('tokens')).lago_id, metric.lago_id)
  t.equal((await client.listBillableMetrics()).meta.total_count, 1)
  t.equal((await client.updateBillableMetric('tokens', { name: 'All tokens' })).name, 'All tokens')
  const duplicate = await thrown(t, () => client.createBillableMetric({ name: 'x', code: 'tokens', aggregation_type: 'count_agg' })) as LagoApiError
  t.same(duplicate.fieldErrors(), { code: ['value_already_exist'] })

  const plan = await client.createPlan({
    name: 'Pro',
    code: 'pro',
    interval: 'monthly',
    amount_cents: 1000,
    amount_currency: 'USD',
    pay_in_advance: false,
    charges: [{ billable_metric_id: metric.lago_id, charge_model: 'graduated', properties: { graduated_ranges: [{ from_value: 0, to_value: 100, per_unit_amount: '0', flat_amount: '0' }, { from_value: 101, to_value: null, per_unit_amount: '0.01', flat_amount: '1' }] } }]
  })
  t.match(plan, { code: 'pro', amount_cents: 1000, charges: [{ charge_model: 'graduated', billable_metric_code: 'tokens', lago_billable_metric_id: metric.lago_id }] })
  t.equal((await client.getPlan('pro')).lago_id, plan.lago_id)
  t.same((await client.listPlans()).plans.map((p) => p.code), ['pro'])
  const updated = await client.updatePlan('pro', { name: 'Pro 2', charges: [{ id: plan.charges?.[0].lago_id, billable_metric_id: metric.lago_id, charge_model: 'standard', properties: { amount: '0.02' } }] })
  t.match(updated, { name: 'Pro 2', charges: [{ lago_id: plan.charges?.[0].lago_id, charge_model: 'standard', properties: { amount: '0.02' } }] })

  const numberPrice = await thrown(t, () => client.createPlan({
    name: 'Bad',
    code: 'bad',
    interval: 'monthly',
    amount_cents: 0,
    amount_currency: 'USD',
    pay_in_advance: false,
    // A JSON number where Lago wants a decimal string.
    charges: [{ billable_metric_id: metric.lago_id, charge_model: 'standard', properties: { amount: 0.02 as unknown as string } }]
  })) as LagoApiError
  t.same(numberPrice.fieldErrors(), { amount: ['invalid_amount'] })
  const unknownMetric = await thrown(t, () => client.createPlan({
    name: 'Bad',
    code: 'bad',
    interval: 'monthly',
    amount_cents: 0,
    amount_currency: 'USD',
    pay_in_advance: false,
    charges: [{ billable_metric_id: '00000000-0000-0000-0000-000000000000', charge_model: 'standard', properties: { amount: '1' } }]
  })) as LagoApiError
  t.match(unknownMetric, { status: 404, code: 'billable_metric_not_found' })

  t.equal((await client.deletePlan('pro')).code, 'pro')
  t.match(await thrown(t, () => client.getPlan('pro')), { status: 404, code: 'plan_not_found' })
  t.equal((await client.deleteBillableMetric('tokens')).code, 'tokens')
  t.match(await thrown(t, () => client.getBillableMetric('tokens')), { status: 404, code: 'billable_metric_not_found' })
})

t.test('subscriptions: create (idempotent), get, list, update, plan change, terminate', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client)
  await client.createPlan({ name: 'Bigger', code: 'bigger', interval: 'monthly', amount_cents: 5000, amount_currency: 'USD', pay_in_advance: false })
  const again = await client.createSubscription({ external_customer_id: 'cus-1', plan_code: 'ai', external_id: 'sub-1' })
  const first = await client.getSubscription('sub-1')
  t.equal(again.lago_id, first.lago_id, 'the same external_id and plan returns the existing subscription')
  t.equal(first.plan?.code, 'ai')
  t.equal((await client.updateSubscription('sub-1', { name: 'Main', ending_at: null })).name, 'Main')

  const upgraded = await client.createSubscription({ external_customer_id: 'cus-1', plan_code: 'bigger', external_id: 'sub-1' })
  t.match(upgraded, { plan_code: 'bigger', status: 'active', previous_plan_code: 'ai' }, 'a costlier plan applies at once')
  t.same((await client.listSubscriptions({ external_customer_id: 'cus-1' })).subscriptions.map((s) => s.plan_code), ['bigger'], 'active only by default')
  t.equal((await client.listSubscriptions({ 'status[]': ['terminated'] })).subscriptions[0].plan_code, 'ai')

  const terminated = await client.terminateSubscription('sub-1')
  t.match(terminated, { status: 'terminated', external_id: 'sub-1' })
  t.match(await thrown(t, () => client.terminateSubscription('sub-1')), { status: 404, code: 'subscription_not_found' })
  t.match(await thrown(t, () => client.createSubscription({ external_customer_id: 'cus-1', plan_code: 'nope', external_id: 's' })), { status: 404, code: 'plan_not_found' })
  const noUsage = await thrown(t, () => client.getCurrentUsage('cus-1', 'sub-1')) as LagoApiError
  t.match(noUsage, { status: 405, code: 'no_active_subscription' }, '405 is distinguishable from 404 and 422')
})

t.test('current usage and invoices: list with filters, get, download before and after the PDF exists', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client)
  await client.createBatchEvents([usageEvent('u-1', 'sub-1'), usageEvent('u-2', 'sub-1', { total_tokens: 1750 })])
  const usage = await client.getCurrentUsage('cus-1', 'sub-1')
  t.match(usage, { currency: 'USD', amount_cents: 200, total_amount_cents: 200, charges_usage: [{ units: '2000.0', events_count: 2, amount_cents: 200 }] })

  const { invoice } = sim.state.closePeriod('sub-1', { issuing_date: '2026-11-30' })
  sim.state.closePeriod('sub-1', { issuing_date: '2026-12-31', payment_status: 'succeeded' })
  const listed = await client.listCustomerInvoices('cus-1', { issuing_date_from: '2026-11-01', issuing_date_to: '2026-11-30' })
  t.same(listed.invoices.map((i) => i.lago_id), [invoice.lago_id])
  t.equal((await client.listInvoices({ 'payment_statuses[]': ['succeeded'] })).invoices.length, 1)
  t.equal((await client.listInvoices({ 'statuses[]': ['draft'] })).meta.total_count, 0)
  const got = await client.getInvoice(invoice.lago_id)
  t.match(got, { total_amount_cents: 200, status: 'finalized', fees: [{ amount_cents: 200, units: '2000.0', item: { type: 'charge', code: 'ai_usage' } }] })

  t.equal(await client.downloadInvoice(invoice.lago_id), null, 'no PDF yet: Lago answers an empty 200')
  sim.state.generateInvoicePdf(invoice.lago_id)
  const downloaded = await client.downloadInvoice(invoice.lago_id)
  t.match(downloaded?.file_url, /\/__simulator\/files\/invoices\/.+\.pdf$/)
  t.match(await thrown(t, () => client.getInvoice('00000000-0000-0000-0000-000000000000')), { status: 404, code: 'invoice_not_found' })
})

t.test('5xx: Lago JSON and proxy HTML bodies are both typed, retryable errors', async (t) => {
  const sim = await simulator(t)
  const { client, attempts } = clientFor(t, sim)
  sim.faults.failNext(1, 500)
  const crash = await thrown(t, () => client.listPlans()) as LagoApiError
  t.match(crash, { status: 500, code: null })
  t.match(crash.body, { status: 500, errors: [{ message: String }] })
  sim.faults.failNext(2, 502)
  const proxy = await thrown(t, () => client.listPlans()) as LagoApiError
  t.match(proxy, { status: 502, error: 'HTTP 502' })
  t.match(proxy.body, /<html>/, 'the non-JSON body is kept as text')
  sim.faults.failNext(1, 503, { route: BATCH })
  t.equal(classifyLagoError(await thrown(t, () => client.listPlans())), 'retryable', 'the remaining 502')
  t.same((await client.listPlans()).plans, [], 'the 503 is scoped to events/batch')
  t.match(await thrown(t, () => client.createBatchEvents([usageEvent('a', 'sub-1')])), { status: 503 })
  t.same(attempts.map((a) => a.statusCode), [500, 502, 502, 200, 503])
})

t.test('429: Retry-After in seconds or as a date, and x-ratelimit-* headers', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  sim.faults.rateLimitNext(1, { retryAfterSeconds: 7, limit: 500, resetSeconds: 1 })
  const seconds = await thrown(t, () => client.createBatchEvents([usageEvent('r', 'sub-1')])) as LagoApiError
  t.match(seconds, { status: 429, retryAfterMs: 7000, rateLimit: { limit: 500, remaining: 0, reset: 1 } })
  t.equal(classifyLagoError(seconds), 'retryable')

  sim.faults.rateLimitNext(1, { retryAfterSeconds: 30, retryAfterAsDate: true })
  const date = await thrown(t, () => client.createBatchEvents([usageEvent('r', 'sub-1')])) as LagoApiError
  t.ok(date.retryAfterMs !== null && date.retryAfterMs > 25_000 && date.retryAfterMs <= 30_000, `HTTP date read as ~30 s (${String(date.retryAfterMs)})`)

  sim.faults.rateLimitNext(1, { omitRetryAfter: true, resetSeconds: 3 })
  const resetOnly = await thrown(t, () => client.createBatchEvents([usageEvent('r', 'sub-1')])) as LagoApiError
  t.equal(resetOnly.retryAfterMs, 3000, 'without Retry-After, x-ratelimit-reset says how long to back off')
  t.equal(sim.state.eventCount, 0, 'nothing stored')
})

t.test('timeouts, dropped and refused connections are LagoUnavailableError with a kind', async (t) => {
  const sim = await simulator(t)
  const { client, attempts } = clientFor(t, sim, { headersTimeoutMs: 300, requestTimeoutMs: 300 })
  sim.faults.delayNext(1, 1500)
  const timeout = await thrown(t, () => client.listPlans())
  t.ok(timeout instanceof LagoUnavailableError)
  t.equal((timeout as LagoUnavailableError).kind, 'timeout')
  t.equal(attempts.at(-1)?.statusCode, null, 'no status when no answer came')

  sim.faults.dropNext(1)
  const dropped = await thrown(t, () => client.listPlans()) as LagoUnavailableError
  t.equal(dropped.kind, 'network')
  t.equal(classifyLagoError(dropped), 'retryable')
  t.match(sim.requests.entries().at(-1), { status: 'dropped', fault: 'drop' })

  // A port nobody listens on: grab a free one and close it.
  const port = await freePort()
  const refused = new LagoClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'k' })
  t.teardown(() => refused.close())
  t.equal((await thrown(t, () => refused.listPlans()) as LagoUnavailableError).kind, 'connection_refused')
})

t.test('store-then-drop and store-then-stall: the reply is lost, Lago has the batch, the retry meets value_already_exist', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim, { headersTimeoutMs: 300, requestTimeoutMs: 300 })
  await seedCatalog(client)
  const batch = [usageEvent('s-1', 'sub-1'), usageEvent('s-2', 'sub-1')]

  sim.faults.storeThenDropNext(1, { route: BATCH })
  const dropped = await thrown(t, () => client.createBatchEvents(batch)) as LagoUnavailableError
  t.equal(dropped.kind, 'network')
  t.equal(sim.state.eventCount, 2, 'Lago stored the batch')
  const retry = await thrown(t, () => client.createBatchEvents(batch)) as LagoApiError
  const errors = retry.eventErrors()
  t.same(Object.fromEntries(errors ?? []), { 0: { transaction_id: ['value_already_exist'] }, 1: { transaction_id: ['value_already_exist'] } },
    'every index says already stored: the forwarder can mark them delivered')

  const later = [usageEvent('s-3', 'sub-1'), usageEvent('s-4', 'sub-1')]
  sim.faults.storeThenStallNext(1, 2000, { route: BATCH })
  const stalled = await thrown(t, () => client.createBatchEvents(later)) as LagoUnavailableError
  t.equal(stalled.kind, 'timeout')
  t.equal(sim.state.eventCount, 4)
  const retryAfterStall = await thrown(t, () => client.createBatchEvents(later)) as LagoApiError
  t.same([...(retryAfterStall.eventErrors()?.values() ?? [])], [{ transaction_id: ['value_already_exist'] }, { transaction_id: ['value_already_exist'] }])

  const usage = await client.getCurrentUsage('cus-1', 'sub-1')
  t.equal(usage.charges_usage[0].events_count, 4, 'each event billed once')
  t.same(sim.state.unbilledEvents(), [])
})

t.test('base URL with /api/v1 or a path prefix, and query encoding', async (t) => {
  const sim = await simulator(t)
  const withSuffix = new LagoClient({ baseUrl: `${sim.url}/api/v1/`, apiKey: sim.apiKey })
  t.teardown(() => withSuffix.close())
  t.equal(withSuffix.baseUrl, sim.url)
  await withSuffix.upsertCustomer({ external_id: 'a/b c' })
  t.equal((await withSuffix.getCustomer('a/b c')).external_id, 'a/b c', 'ids are escaped in paths')
  const { client, attempts } = clientFor(t, sim)
  await client.listInvoices({ 'statuses[]': ['finalized', 'draft'], issuing_date_from: '2026-01-01' })
  t.equal(attempts[0].path, '/api/v1/invoices?statuses%5B%5D=finalized&statuses%5B%5D=draft&issuing_date_from=2026-01-01')
})
