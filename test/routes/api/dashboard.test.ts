import t from 'tap'
import Big from 'big.js'
import { build, sqlClient } from '../../helpers/app.js'
import { ADMIN_KEY } from '../../helpers/forwarding.js'
import { apiClient } from '../../helpers/api.js'
import { dashboardEvents, EXHAUSTED, insertEvents, LAGO_ERROR, NO_MAPPING, NO_SUBSCRIPTION, REJECTED, type SeededEvent } from '../../helpers/dashboard.js'

// Forwarder and bootstrap off: the seeded statuses stay as seeded while the tests look at them.
const OFFLINE = { API_KEYS: ADMIN_KEY, FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', LAGO_API_KEY: '' }
const ROUTES = ['/api/pipeline', '/api/problems', '/api/usage', '/api/lago/status']

const sum = (events: SeededEvent[]): string => events.reduce((s, e) => s.plus(e.cost_usd), new Big(0)).toString()
const billable = (events: SeededEvent[]): SeededEvent[] => events.filter((e) => e.status !== 'not_billable')

t.test('every operator route needs a service API key', async (t) => {
  const app = await build(t, OFFLINE)
  for (const url of ROUTES) {
    for (const key of [null, 'wrong-key']) {
      const res = await apiClient(app, key).get(url)
      t.equal(res.statusCode, 401, `${url} with ${key ?? 'no key'}`)
      t.equal(res.json().code, 'unauthorized')
    }
    t.equal((await apiClient(app).get(url)).statusCode, 200, `${url} with the key`)
  }
})

t.test('usage of every customer: exact totals, top customers, models and days; each customer equals its own usage API', async (t) => {
  const app = await build(t, OFFLINE)
  const api = apiClient(app)
  const db = await sqlClient(t)
  const now = Date.now()
  const events = dashboardEvents(now)
  await db.query('TRUNCATE litellm_usage_events') // the file's tests share a database
  await insertEvents(db, events)
  const from = new Date(now - 10 * 86_400_000).toISOString()
  const to = new Date(now + 60_000).toISOString()

  const res = await api.get(`/api/usage?from=${from}&to=${to}&top=2`)
  t.equal(res.statusCode, 200, res.body)
  const usage = res.json()
  const counted = billable(events)
  t.equal(usage.totals.cost_usd, sum(counted), 'the total is the exact sum (not a float sum) without failed calls')
  t.equal(usage.totals.cost_usd, '17.959829000000000001', 'by hand: 17.559829000000000001 and the lago_error call\'s 0.4')
  t.equal(usage.totals.requests, counted.length)
  t.equal(usage.totals.total_tokens, counted.reduce((n, e) => n + e.total_tokens, 0))
  const customers = [...new Set(counted.map((e) => e.customer))]
  t.equal(usage.totals.customers, customers.length)

  // Top customers by exact cost, compared as decimals; the two largest only (top=2).
  const expectedCustomers = customers.map((c) => ({ key: c, cost_usd: sum(counted.filter((e) => e.customer === c)) }))
    .sort((a, b) => new Big(b.cost_usd).cmp(a.cost_usd))
  t.same(usage.customers.map((c: { key: string, cost_usd: string }) => ({ key: c.key, cost_usd: c.cost_usd })), expectedCustomers.slice(0, 2))
  t.same(usage.customers.map((c: { key: string }) => c.key), ['globex', 'acme'])

  // The same figure as GET /api/customers/:id/usage over the same range, as the same string.
  for (const c of usage.customers) {
    const own = await api.get(`/api/customers/${c.key}/usage?from=${from}&to=${to}`)
    t.equal(own.json().totals.cost_usd, c.cost_usd, `${c.key}: the customer's own usage total`)
    t.equal(own.json().totals.requests, c.requests)
  }

  const models = [...new Set(counted.map((e) => e.model))]
  t.same(new Set(usage.models.map((m: { key: string }) => m.key)), new Set(models))
  for (const m of usage.models) t.equal(m.cost_usd, sum(counted.filter((e) => e.model === m.key)), `model ${m.key}`)

  const dayOf = (e: SeededEvent): string => e.timestamp.toISOString().slice(0, 10)
  const days = [...new Set(counted.map(dayOf))].sort()
  t.same(usage.days.map((d: { day: string }) => d.day), days, 'day buckets, oldest first')
  for (const d of usage.days) {
    const ofDay = counted.filter((e) => dayOf(e) === d.day)
    t.equal(d.cost_usd, sum(ofDay), `${d.day}: total`)
    t.ok(d.customers.every((c: { key: string }) => c.key === 'globex' || c.key === 'acme'), `${d.day}: only the top customers`)
    for (const c of d.customers) t.equal(c.cost_usd, sum(ofDay.filter((e) => e.customer === c.key)), `${d.day} ${c.key}`)
    for (const m of d.models) t.equal(m.cost_usd, sum(ofDay.filter((e) => e.model === m.key)), `${d.day} ${m.key}`)
  }

  const outside = await api.get(`/api/usage?from=${new Date(now - 100 * 86_400_000).toISOString()}&to=${new Date(now - 90 * 86_400_000).toISOString()}`)
  t.same(outside.json().totals, { requests: 0, total_tokens: 0, cost_usd: '0', customers: 0 }, 'an empty range')
})

t.test('usage ranges: clear errors for a reversed, too long or malformed range', async (t) => {
  const app = await build(t, OFFLINE)
  const api = apiClient(app)
  const reversed = await api.get('/api/usage?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z')
  t.equal(reversed.statusCode, 400)
  t.equal(reversed.json().code, 'invalid_range')
  const long = await api.get('/api/usage?from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z')
  t.equal(long.statusCode, 400)
  t.match(long.json().message, /366 days/)
  const malformed = await api.get('/api/usage?from=yesterday')
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.json().code, 'validation_error')
  t.equal((await api.get('/api/problems?limit=0')).statusCode, 400)
})

t.test('problems grouped by status and reason with their latest event; unmapped identities; retry of one group only', async (t) => {
  const app = await build(t, OFFLINE)
  const api = apiClient(app)
  const db = await sqlClient(t)
  const events = dashboardEvents()
  await db.query('TRUNCATE litellm_usage_events')
  await insertEvents(db, events)

  const problems = (await api.get('/api/problems')).json()
  // By hand: the seeded table's problem events, by (status, reason).
  const expected = [
    { status: 'dead', reason: REJECTED, events: 3 },
    { status: 'unmapped', reason: NO_MAPPING, events: 2 },
    { status: 'dead', reason: EXHAUSTED, events: 1 },
    { status: 'failed', reason: 'Lago answered 503', events: 1 },
    { status: 'lago_error', reason: LAGO_ERROR, events: 1 },
    { status: 'unmapped', reason: NO_SUBSCRIPTION, events: 1 }
  ]
  t.same(problems.groups.map((g: { status: string, reason: string, events: number }) => ({ status: g.status, reason: g.reason, events: g.events })), expected, 'largest first')
  t.equal(problems.total_events, 9)
  t.match(problems.groups.find((g: { status: string }) => g.status === 'lago_error'), { kind: 'lago_error', cost_usd: '0.4', sample: { customer_external_id: 'initech', attempts: 3 } },
    'Lago\'s refusals are a group of their own')
  for (const g of problems.groups) {
    const members = events.filter((e) => e.status === g.status && e.reason === g.reason)
    t.equal(g.sample.request_id, members[members.length - 1].request_id, `${g.status} ${g.reason}: the latest event as sample`)
    t.equal(g.cost_usd, sum(members))
  }
  t.same(problems.unmapped_identities.map((u: Record<string, unknown>) => ({ identity: u.identity, value: u.value, events: u.events, cost_usd: u.cost_usd })),
    [{ identity: 'team', value: 'team-red', events: 2, cost_usd: '0.33' }])

  const retry = await api.post('/webhooks/retry', { statuses: ['dead'], reason: REJECTED })
  t.same(retry.json(), { retried: 3 }, 'exactly the group')
  const after = (await api.get('/api/problems')).json()
  t.notOk(after.groups.some((g: { reason: string }) => g.reason === REJECTED), 'the group is gone')
  t.ok(after.groups.some((g: { reason: string }) => g.reason === EXHAUSTED), 'the other dead group stays')
  t.equal(after.total_events, 6)
  t.same((await api.post('/webhooks/retry', { statuses: ['lago_error'], reason: LAGO_ERROR })).json(), { retried: 1 }, 'the lago_error group, as the page sends it')
  t.notOk((await api.get('/api/problems')).json().groups.some((g: { status: string }) => g.status === 'lago_error'))
  t.equal((await api.post('/webhooks/retry', { statuses: ['dead'], reason: 'no such reason' })).json().retried, 0)
  t.equal((await api.post('/webhooks/retry', { reason: '' })).statusCode, 400, 'an empty reason is refused')
})

t.test('pipeline: last-minute counts, backlog and problems per source, every known source listed', async (t) => {
  const app = await build(t, OFFLINE)
  const api = apiClient(app)
  const db = await sqlClient(t)
  const events = dashboardEvents()
  await db.query('TRUNCATE litellm_usage_events')
  await insertEvents(db, events)
  const pipeline = (await api.get('/api/pipeline')).json()
  t.equal(pipeline.received_last_minute, events.length, 'every seeded event was received just now')
  t.equal(pipeline.forwarded_last_minute, events.filter((e) => e.status === 'forwarded').length)
  t.equal(pipeline.received_per_second, Math.round((events.length / 60) * 1000) / 1000)
  t.equal(pipeline.backlog, events.filter((e) => e.status === 'pending' || e.status === 'failed').length)
  t.type(pipeline.oldest_pending_age_seconds, 'number')
  t.same(pipeline.forwarder, { status: 'disabled', reason: 'FORWARDER_ENABLED=false' })
  for (const source of ['generic_api', 'lago_callback', 'openmeter', 'webhook', 'webhook_batch', 'spend_logs']) {
    const mine = events.filter((e) => e.source === source)
    t.same(pipeline.sources.find((s: { source: string }) => s.source === source), {
      source,
      received_last_minute: mine.length,
      forwarded_last_minute: mine.filter((e) => e.status === 'forwarded').length,
      backlog: mine.filter((e) => e.status === 'pending' || e.status === 'failed').length,
      problems: mine.filter((e) => ['dead', 'failed', 'unmapped', 'lago_error'].includes(e.status)).length
    }, source)
  }
})

t.test('Lago status: bootstrap, forwarder and the last delivery, without calling Lago', async (t) => {
  const app = await build(t, OFFLINE)
  const api = apiClient(app)
  const db = await sqlClient(t)
  t.same((await api.get('/api/lago/status')).json(), {
    configured: false,
    bootstrap: { status: 'disabled', last_error: null, last_attempt_at: null, done_at: null },
    forwarder: { status: 'disabled', reason: 'FORWARDER_ENABLED=false' },
    last_delivery: null
  })
  await db.query(`INSERT INTO webhook_delivery_logs (event_type, endpoint, request_count, http_status, duration_ms, created_at)
                  VALUES ('usage', '/api/v1/events/batch', 10, 200, 5, now() - interval '1 hour'),
                         ('usage', '/api/v1/events/batch', 3, 503, 5, now())`)
  t.match((await api.get('/api/lago/status')).json().last_delivery, { endpoint: '/api/v1/events/batch', events: 3, http_status: 503 })
})
