import t from 'tap'
import { build, seedEvent, sqlClient } from '../../helpers/app.js'
import { ADMIN_KEY, buildForwarding, ingest, until } from '../../helpers/forwarding.js'
import { apiClient, subscribedCustomer } from '../../helpers/api.js'

const at = (iso: string): number => Date.parse(iso) / 1000

t.test('stored usage by model, provider and day: exact sums over [from, to), failed calls excluded, no Lago needed', async (t) => {
  const app = await build(t, { API_KEYS: ADMIN_KEY, LAGO_API_KEY: '', FORWARDER_ENABLED: 'false' })
  const api = apiClient(app)
  const db = await sqlClient(t)
  const u = (overrides: Record<string, unknown>) => seedEvent({ customer_id: 'u1', ...overrides })
  await ingest(app, [
    u({ model: 'gpt-4o', provider: 'openai', timestamp: at('2026-11-01T00:00:00Z'), tokens_input: 10, tokens_output: 20, total_tokens: 30, cost_usd: '0.1' }),
    u({ model: 'gpt-4o', provider: 'azure', timestamp: at('2026-11-01T23:59:59Z'), tokens_input: 1, tokens_output: 2, total_tokens: 3, cost_usd: '0.2' }),
    u({ model: 'claude-3', provider: 'anthropic', timestamp: at('2026-11-02T12:00:00Z'), tokens_input: 100, tokens_output: 150, total_tokens: 250, cost_usd: 0.00375 }),
    u({ model: 'claude-3', provider: 'anthropic', timestamp: at('2026-11-03T00:00:00Z'), cost_usd: '9' }), // at `to`: outside
    u({ model: 'gpt-4o', provider: 'openai', timestamp: at('2026-10-31T23:59:59Z'), cost_usd: '9' }), // before `from`
    seedEvent({ customer_id: 'someone-else', timestamp: at('2026-11-01T12:00:00Z'), cost_usd: '9' })
  ])
  // A LiteLLM failure payload stored as not billable (its status comes with the LiteLLM formats work).
  const failed = u({ model: 'gpt-4o', provider: 'openai', timestamp: at('2026-11-02T00:00:00Z'), cost_usd: '9' })
  await ingest(app, [failed])
  await db.query(`ALTER TABLE litellm_usage_events DROP CONSTRAINT litellm_usage_events_status_check,
                  ADD CONSTRAINT litellm_usage_events_status_check CHECK (status IN ('pending', 'failed', 'forwarded', 'dead', 'unmapped', 'not_billable'))`)
  await db.query('UPDATE litellm_usage_events SET status = $1 WHERE request_id = $2', ['not_billable', failed.request_id])

  const range = 'from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z'
  const byModel = await api.get(`/api/customers/u1/usage?${range}`)
  t.equal(byModel.statusCode, 200, byModel.body)
  t.same(byModel.json(), {
    customer_external_id: 'u1',
    from: '2026-11-01T00:00:00.000Z',
    to: '2026-11-03T00:00:00.000Z',
    group_by: 'model',
    totals: { requests: 3, input_tokens: 111, output_tokens: 172, total_tokens: 283, cost_usd: '0.30375' },
    groups: [
      { key: 'claude-3', requests: 1, input_tokens: 100, output_tokens: 150, total_tokens: 250, cost_usd: '0.00375' },
      { key: 'gpt-4o', requests: 2, input_tokens: 11, output_tokens: 22, total_tokens: 33, cost_usd: '0.3' }
    ]
  }, '0.1 + 0.2 is exactly 0.3')

  const byProvider = (await api.get(`/api/customers/u1/usage?${range}&group_by=provider`)).json()
  t.same(byProvider.groups.map((g: { key: string, cost_usd: string }) => [g.key, g.cost_usd]), [['anthropic', '0.00375'], ['azure', '0.2'], ['openai', '0.1']])
  t.equal(byProvider.totals.cost_usd, '0.30375')
  const byDay = (await api.get(`/api/customers/u1/usage?${range}&group_by=day`)).json()
  t.same(byDay.groups.map((g: { key: string, requests: number, cost_usd: string }) => [g.key, g.requests, g.cost_usd]), [['2026-11-01', 2, '0.3'], ['2026-11-02', 1, '0.00375']], 'days in UTC')

  const hoursAgo = (h: number) => Math.floor(Date.now() / 1000) - h * 3600
  await ingest(app, [seedEvent({ customer_id: 'u2', timestamp: hoursAgo(1), cost_usd: '1.5' }), seedEvent({ customer_id: 'u2', timestamp: hoursAgo(31 * 24), cost_usd: '9' })])
  const defaults = (await api.get('/api/customers/u2/usage')).json()
  t.equal(defaults.group_by, 'model')
  t.equal(defaults.totals.cost_usd, '1.5', 'the last 30 days by default')
  t.ok(Date.parse(defaults.to) - Date.parse(defaults.from) === 30 * 24 * 3600 * 1000)

  t.same((await api.get('/api/customers/nobody/usage')).json().totals, { requests: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: '0' })
  const reversed = await api.get('/api/customers/u1/usage?from=2026-11-03T00:00:00Z&to=2026-11-01T00:00:00Z')
  t.equal(reversed.statusCode, 400)
  t.match(reversed.json(), { code: 'invalid_range', message: /from \(2026-11-03T00:00:00.000Z\) must be before to/ })
  t.match((await api.get('/api/customers/u1/usage?group_by=week')).json(), { code: 'validation_error', details: [{ field: '/group_by' }] })
  t.equal((await api.get('/api/customers/u1/usage?from=yesterday')).statusCode, 400)
})

t.test('current usage: the open period as Lago computes it', async (t) => {
  const { app, sim } = await buildForwarding(t, { BOOTSTRAP_ON_START: 'false' })
  const api = apiClient(app)
  await subscribedCustomer(api, { customer: 'cu', plan: 'metered', properties: { amount: '0.01', pricing_group_keys: ['model'] } })
  const now = Math.floor(Date.now() / 1000)
  await ingest(app, [seedEvent({ customer_id: 'cu', timestamp: now, model: 'gpt-4o' }), seedEvent({ customer_id: 'cu', timestamp: now, model: 'claude-3' })])
  await until(() => sim.state.storedEvents().filter((e) => e.external_subscription_id === 'cu').length === 2, 'the events in Lago')

  const res = await api.get('/api/customers/cu/current_usage')
  t.equal(res.statusCode, 200, res.body)
  const usage = res.json()
  t.match(usage, { customer_external_id: 'cu', subscription_external_id: 'cu', currency: 'USD', amount_cents: 500, total_amount_cents: 500, taxes_amount_cents: 0 })
  t.match(usage.charges, [{ billable_metric_code: 'ai_usage', aggregation_type: 'sum_agg', charge_model: 'standard', units: '500.0', events_count: 2, amount_cents: 500 }])
  t.same(usage.charges[0].groups.map((g: { values: Record<string, string>, amount_cents: number }) => [g.values.model, g.amount_cents]).sort(), [['claude-3', 250], ['gpt-4o', 250]])
  t.equal((await api.get('/api/customers/cu/current_usage?subscription_external_id=cu')).statusCode, 200)

  await api.post('/api/customers', { external_id: 'idle' })
  const idle = await api.get('/api/customers/idle/current_usage')
  t.equal(idle.statusCode, 409)
  t.same(idle.json(), { statusCode: 409, error: 'Conflict', code: 'no_active_subscription', message: 'Customer "idle" has no active subscription' })
  t.equal((await api.get('/api/customers/cu/current_usage?subscription_external_id=other')).json().code, 'no_active_subscription', 'Lago\'s 405')
  t.equal((await api.get('/api/customers/nobody/current_usage')).json().code, 'customer_not_found')

  sim.faults.failNext(1, 500, { route: 'GET /api/v1/customers/:external_customer_id/current_usage' })
  t.equal((await api.get('/api/customers/cu/current_usage')).statusCode, 502)
})
