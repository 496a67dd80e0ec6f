import t from 'tap'
import { buildForwarding, ingest, until } from '../../helpers/forwarding.js'
import { apiClient, lagoCallsDuring } from '../../helpers/api.js'
import { seedEvent, sqlClient, uid } from '../../helpers/app.js'

type Api = ReturnType<typeof apiClient>
const CUSTOMER_ROUTE = { route: 'GET /api/v1/customers/:external_customer_id' }

/** The service and the simulator, with the default plan in place; forwarding on unless said otherwise. */
async function setup (t: Parameters<typeof buildForwarding>[0], env: Record<string, string> = {}) {
  const { app, sim } = await buildForwarding(t, env)
  if (app.bootstrap.state().status !== 'disabled') await until(() => app.bootstrap.state().status === 'done', 'the Lago bootstrap')
  return { app, sim, api: apiClient(app) }
}

async function createPlan (api: Api, code: string, amountCents: number): Promise<void> {
  const res = await api.post('/api/billing/plans', {
    name: code,
    code,
    interval: 'monthly',
    amount_cents: amountCents,
    amount_currency: 'USD',
    charges: [{ billable_metric_id: 'ai_usage', charge_model: 'standard', properties: { amount: '0.000002' } }]
  })
  if (res.statusCode !== 201) throw new Error(res.body)
}

t.test('POST creates the customer and its subscription, sends its waiting events, and is idempotent', async (t) => {
  const { app, sim, api } = await setup(t, { AUTO_PROVISION_CUSTOMERS: 'false' })
  const db = await sqlClient(t)
  const id = uid('acme')
  const minuteAgo = Math.floor(Date.now() / 1000) - 60
  const events = [seedEvent({ customer_id: id, timestamp: minuteAgo }), seedEvent({ customer_id: id, timestamp: minuteAgo + 30 })]
  await ingest(app, events)
  await until(async () => (await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 AND status = $2', [id, 'unmapped'])).rows[0].n === 2,
    'the events waiting for a subscription')

  const body = { external_id: id, name: 'Acme Corporation', email: 'billing@acme.com', plan_code: 'ai_usage_plan' }
  const res = await api.post('/api/customers', body)
  t.equal(res.statusCode, 200, res.body)
  const customer = res.json()
  t.match(customer, {
    external_id: id,
    name: 'Acme Corporation',
    email: 'billing@acme.com',
    currency: 'USD',
    subscription: { external_id: id, plan_code: 'ai_usage_plan', status: 'active', next_plan_code: null }
  })
  t.ok(Date.parse(customer.subscription.started_at) <= minuteAgo * 1000, 'started early enough to bill the waiting events')

  const { rows: [row] } = await db.query('SELECT * FROM customers WHERE external_id = $1', [id])
  t.match(row, { lago_id: customer.lago_id, name: 'Acme Corporation', email: 'billing@acme.com', plan_code: 'ai_usage_plan', subscription_external_id: id, provisioned_by: 'api' })

  await until(() => events.every((e) => sim.state.storedEvents().some((s) => s.transaction_id === e.request_id)), 'the released events in Lago')
  t.same(sim.state.unbilledEvents(), [], 'Lago bills every one of them')

  const again = await api.post('/api/customers', body)
  t.equal(again.statusCode, 200)
  t.same(again.json(), customer, 'the same request again answers the same')
  const { subscriptions } = await app.lago.listSubscriptions({ external_customer_id: id })
  t.equal(subscriptions.length, 1, 'one subscription')

  const update = await api.post('/api/customers', { external_id: id, email: 'finance@acme.com' })
  t.match(update.json(), { name: 'Acme Corporation', email: 'finance@acme.com', subscription: { plan_code: 'ai_usage_plan' } }, 'an upsert writes only what it is sent')
})

t.test('GET lists with pagination and search, and reads one customer with its subscription', async (t) => {
  const { api } = await setup(t, { FORWARDER_ENABLED: 'false' })
  for (const name of ['Alpha', 'Beta', 'Gamma']) t.equal((await api.post('/api/customers', { external_id: `list-${name}`, name })).statusCode, 200)
  const first = await api.get('/api/customers?per_page=2')
  t.equal(first.statusCode, 200)
  t.equal(first.json().customers.length, 2)
  t.same(first.json().meta, { page: 1, per_page: 2, total_count: 3, total_pages: 2, next_page: 2, prev_page: null })
  const second = await api.get('/api/customers?per_page=2&page=2')
  t.equal(second.json().customers.length, 1)
  t.same(second.json().meta, { page: 2, per_page: 2, total_count: 3, total_pages: 2, next_page: null, prev_page: 1 })
  const found = await api.get('/api/customers?search=gamm')
  t.same(found.json().customers.map((c: { name: string }) => c.name), ['Gamma'])
  t.notOk('subscription' in found.json().customers[0], 'list items are summaries')

  const one = await api.get('/api/customers/list-Beta')
  t.equal(one.statusCode, 200)
  t.match(one.json(), { external_id: 'list-Beta', name: 'Beta', subscription: null })

  t.equal((await api.get('/api/customers?per_page=101')).statusCode, 400, 'per_page is at most 100')
  t.match((await api.get('/api/customers?serach=gamm')).json(), { code: 'validation_error', message: 'querystring field /serach is not an allowed property' }, 'a mistyped filter is refused, not ignored')
  t.match((await api.get('/api/customers?page=0')).json(), { code: 'validation_error', message: /page/ })
})

t.test('PATCH changes fields and the plan (upgrade at once, downgrade at the period\'s end), never creates', async (t) => {
  const { app, sim, api } = await setup(t, { FORWARDER_ENABLED: 'false' })
  const db = await sqlClient(t)
  await createPlan(api, 'ai_pro', 5000)
  await api.post('/api/customers', { external_id: 'pat', name: 'Pat', plan_code: 'ai_usage_plan' })

  const renamed = await api.patch('/api/customers/pat', { name: 'Pat Ltd' })
  t.equal(renamed.statusCode, 200)
  t.match(renamed.json(), { name: 'Pat Ltd', subscription: { plan_code: 'ai_usage_plan' } })

  const upgraded = await api.patch('/api/customers/pat', { plan_code: 'ai_pro' })
  t.equal(upgraded.statusCode, 200, upgraded.body)
  t.match(upgraded.json(), { name: 'Pat Ltd', subscription: { external_id: 'pat', plan_code: 'ai_pro', status: 'active', next_plan_code: null } })
  t.match((await db.query('SELECT plan_code, subscription_external_id FROM customers WHERE external_id = $1', ['pat'])).rows[0], { plan_code: 'ai_pro', subscription_external_id: 'pat' })
  t.equal((await app.lago.getSubscription('pat')).plan_code, 'ai_pro', 'the same subscription id now bills the new plan')

  const downgraded = await api.patch('/api/customers/pat', { plan_code: 'ai_usage_plan' })
  t.equal(downgraded.statusCode, 200)
  t.match(downgraded.json().subscription, { plan_code: 'ai_pro', next_plan_code: 'ai_usage_plan', downgrade_plan_date: /^\d{4}-\d{2}-\d{2}$/ })
  t.match((await api.get('/api/customers/pat')).json().subscription, { plan_code: 'ai_pro', next_plan_code: 'ai_usage_plan' }, 'GET agrees')

  const unknown = await api.patch('/api/customers/nobody', { name: 'Nobody' })
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { statusCode: 404, error: 'Not Found', code: 'customer_not_found', message: 'No customer with external_id "nobody"' })
  t.equal(sim.state.summary().customers, 1, 'PATCH created nothing')

  const noPlan = await api.patch('/api/customers/pat', { plan_code: 'no_such_plan' })
  t.equal(noPlan.statusCode, 404)
  t.match(noPlan.json(), { code: 'plan_not_found', message: 'No plan with code "no_such_plan"' })
  t.equal((await app.lago.getSubscription('pat')).plan_code, 'ai_pro', 'nothing changed')

  const empty = await api.patch('/api/customers/pat', {})
  t.equal(empty.statusCode, 400)
})

t.test('DELETE terminates the subscription in Lago, forgets the mapping, keeps the stored usage', async (t) => {
  const { app, sim, api } = await setup(t)
  const db = await sqlClient(t)
  await api.post('/api/customers', { external_id: 'gone', plan_code: 'ai_usage_plan' })
  const event = seedEvent({ customer_id: 'gone', timestamp: Math.floor(Date.now() / 1000), cost_usd: '0.5' })
  await ingest(app, [event])
  await until(() => sim.state.storedEvents().some((e) => e.transaction_id === event.request_id), 'the event in Lago')

  const res = await api.delete('/api/customers/gone')
  t.equal(res.statusCode, 200)
  t.match(res.json(), { external_id: 'gone', subscription: null })
  t.same((await app.lago.listSubscriptions({ external_customer_id: 'gone', 'status[]': ['terminated'] })).subscriptions.map((s) => s.status), ['terminated'])
  t.equal((await db.query('SELECT count(*)::int AS n FROM customers WHERE external_id = $1', ['gone'])).rows[0].n, 0)
  t.equal((await api.get('/api/customers/gone')).statusCode, 404)
  t.equal((await api.delete('/api/customers/gone')).statusCode, 404)
  const usage = await api.get('/api/customers/gone/usage')
  t.equal(usage.json().totals.cost_usd, '0.5', 'its stored usage stays')
})

t.test('inputs are strict: 400 naming the field, 415 for other media types', async (t) => {
  const { api, sim } = await setup(t, { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  const cases: Array<[unknown, RegExp]> = [
    [{ name: 'No id' }, /\/external_id is required/],
    [{ external_id: 'x', plan: 'ai_usage_plan' }, /\/plan is not an allowed property/],
    [{ external_id: 'x', currency: 'usd' }, /\/currency/],
    [{ external_id: '' }, /\/external_id/],
    [{ external_id: 'x', name: 42 }, /\/name must be string/]
  ]
  for (const [body, message] of cases) {
    const res = await api.post('/api/customers', body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.match(res.json(), { code: 'validation_error', message })
  }
  const text = await api.post('/api/customers', 'external_id=x', { 'content-type': 'text/plain' })
  t.equal(text.statusCode, 415)
  t.equal(sim.requests.total, 0, 'nothing reached Lago')
})

t.test('Lago\'s verdicts keep their meaning: 422 with its field errors, 404 with its code', async (t) => {
  const { api } = await setup(t, { FORWARDER_ENABLED: 'false' })
  const invalid = await api.post('/api/customers', { external_id: 'bad-mail', email: 'not-an-email' })
  t.equal(invalid.statusCode, 422)
  t.same(invalid.json(), {
    statusCode: 422,
    error: 'Unprocessable Entity',
    code: 'lago_validation_error',
    message: 'Lago refused the request: email is not a valid email address',
    details: [{ field: 'email', message: 'is not a valid email address', code: 'invalid_email_format' }]
  })

  await api.post('/api/customers', { external_id: 'euro', currency: 'EUR' })
  const mismatch = await api.patch('/api/customers/euro', { plan_code: 'ai_usage_plan' })
  t.equal(mismatch.statusCode, 422)
  t.match(mismatch.json().details, [{ field: 'currency', code: 'currencies_does_not_match' }])

  const missing = await api.get('/api/customers/nobody')
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'customer_not_found')
  const noPlan = await api.post('/api/customers', { external_id: 'planless', plan_code: 'no_such_plan' })
  t.equal(noPlan.statusCode, 404)
  t.equal(noPlan.json().code, 'plan_not_found')
  t.equal((await api.get('/api/customers/planless')).statusCode, 404, 'an unknown plan is refused before the customer is written')
})

t.test('Lago failing, slow, away or throttling: 502 or 503 with a clear message, never a hang', async (t) => {
  const { sim, api } = await setup(t, { FORWARDER_ENABLED: 'false', LAGO_TIMEOUT_MS: '300', LAGO_CACHE_TTL_SECONDS: '0' })
  await api.post('/api/customers', { external_id: 'c1' })

  sim.faults.failNext(1, 500, CUSTOMER_ROUTE)
  const crashed = await api.get('/api/customers/c1')
  t.equal(crashed.statusCode, 502)
  t.same(crashed.json(), { statusCode: 502, error: 'Bad Gateway', code: 'lago_error', message: 'Lago failed to process the request; the details are in this service\'s logs' })
  t.notMatch(crashed.body, /simulated|backtrace/, 'nothing of Lago\'s error body leaks')

  sim.faults.failNext(1, 503, CUSTOMER_ROUTE)
  t.equal((await api.get('/api/customers/c1')).json().code, 'lago_error', 'a proxy\'s 503 page from Lago is a 502 too')

  sim.faults.delayNext(1, 1500, CUSTOMER_ROUTE)
  const started = Date.now()
  const slow = await api.get('/api/customers/c1')
  t.ok(Date.now() - started < 1200, `answered after ${Date.now() - started} ms, not after Lago's 1500`)
  t.equal(slow.statusCode, 503)
  t.same(slow.json(), { statusCode: 503, error: 'Service Unavailable', code: 'lago_unavailable', message: 'Lago did not answer in time; retry later' })

  sim.faults.rateLimitNext(1, { retryAfterSeconds: 7 }, CUSTOMER_ROUTE)
  const throttled = await api.get('/api/customers/c1')
  t.equal(throttled.statusCode, 503)
  t.equal(throttled.headers['retry-after'], '7', 'Lago\'s Retry-After is passed on')
  t.match(throttled.json(), { code: 'lago_unavailable', message: /rate limiting/ })

  sim.faults.outage(300, 'refuse')
  const away = await api.get('/api/customers/c1')
  t.equal(away.statusCode, 503)
  t.match(away.json(), { code: 'lago_unavailable', message: 'Lago cannot be reached; retry later' })
})

t.test('without LAGO_API_KEY the API says so', async (t) => {
  const { app } = await buildForwarding(t, { LAGO_API_KEY: '', FORWARDER_ENABLED: 'false' })
  const res = await apiClient(app).get('/api/customers/c1')
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'lago_not_configured', message: /LAGO_API_KEY/ })
})

t.test('reads are cached in Redis and dropped by writes through the API; Redis away means reading Lago', async (t) => {
  const { app, sim, api } = await setup(t, { FORWARDER_ENABLED: 'false', LAGO_CACHE_TTL_SECONDS: '60' })
  await api.post('/api/customers', { external_id: 'cached', name: 'Before' })
  t.equal((await api.get('/api/customers/cached')).json().name, 'Before')
  t.same(await lagoCallsDuring(sim, async () => await api.get('/api/customers/cached')), [], 'a second read does not reach Lago')

  sim.state.upsertCustomer({ customer: { external_id: 'cached', name: 'Changed in Lago' } })
  t.equal((await api.get('/api/customers/cached')).json().name, 'Before', 'a change made in Lago directly shows after the TTL')

  t.equal((await api.patch('/api/customers/cached', { email: 'a@b.co' })).statusCode, 200)
  t.match((await api.get('/api/customers/cached')).json(), { name: 'Changed in Lago', email: 'a@b.co' }, 'a write through the API drops the cached copy')

  t.equal((await api.get('/api/customers')).json().meta.total_count, 1)
  t.same(await lagoCallsDuring(sim, async () => await api.get('/api/customers')), [], 'list pages are cached too')
  await api.post('/api/customers', { external_id: 'second' })
  t.equal((await api.get('/api/customers')).json().meta.total_count, 2, 'and dropped by a write')

  if (app.redis.client === null) return // REDIS_URL unset for this run: the cache is in-process
  app.redis.client.disconnect()
  const calls = await lagoCallsDuring(sim, async () => {
    const res = await api.get('/api/customers/cached')
    t.equal(res.statusCode, 200)
    t.equal(res.json().email, 'a@b.co')
  })
  t.ok(calls.some((c) => c.startsWith('GET /api/v1/customers/cached')), 'read from Lago while Redis is away')
})
