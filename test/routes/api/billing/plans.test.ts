import t from 'tap'
import { buildForwarding } from '../../../helpers/forwarding.js'
import { apiClient, lagoCallsDuring } from '../../../helpers/api.js'
import { sqlClient } from '../../../helpers/app.js'

const OFFLINE = { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' }

async function setup (t: Parameters<typeof buildForwarding>[0], env: Record<string, string> = {}) {
  const { app, sim } = await buildForwarding(t, { ...OFFLINE, ...env })
  const api = apiClient(app)
  const metric = await api.post('/api/billing/metrics', {
    name: 'Tokens',
    code: 'tokens',
    aggregation_type: 'sum_agg',
    field_name: 'total_tokens',
    filters: [{ key: 'model', values: ['gpt-4o', 'claude-3'] }]
  })
  if (metric.statusCode !== 201) throw new Error(metric.body)
  return { app, sim, api, metric: metric.json() as { lago_id: string, code: string } }
}

const plan = (code: string, charges: unknown[], extra: Record<string, unknown> = {}) =>
  ({ name: `Plan ${code}`, code, interval: 'monthly', amount_cents: 1000, amount_currency: 'USD', charges, ...extra })

const range = (from: number, to: number | null, perUnit: string, flat = '0') => ({ from_value: from, to_value: to, per_unit_amount: perUnit, flat_amount: flat })

t.test('every charge model goes to Lago as Lago defines it and comes back in the API\'s shape', async (t) => {
  const { api, metric } = await setup(t)
  const { lago_id: metricId } = (await api.post('/api/billing/metrics', { name: 'Spend', code: 'spend', aggregation_type: 'sum_agg', field_name: 'cost' })).json()
  const charges = [
    { billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: '0.000002', pricing_group_keys: ['model'] }, invoice_display_name: 'Tokens' },
    { billable_metric_id: metric.lago_id, charge_model: 'graduated', properties: { graduated_ranges: [range(0, 1000, '0', '0'), range(1001, null, '0.001', '1')] } },
    { billable_metric_id: 'tokens', charge_model: 'package', properties: { amount: '5', package_size: 1000, free_units: 100 } },
    { billable_metric_id: 'spend', charge_model: 'percentage', properties: { rate: '2.5', fixed_amount: '0.1', free_units_per_events: 3, per_transaction_max_amount: '10' } },
    { billable_metric_id: 'tokens', charge_model: 'volume', properties: { volume_ranges: [range(0, 100, '0.01'), range(101, null, '0.005')] } },
    { billable_metric_id: metricId, charge_model: 'dynamic' },
    {
      billable_metric_id: 'tokens',
      charge_model: 'standard',
      properties: { amount: '0.000001' },
      filters: [{ values: { model: ['gpt-4o'] }, properties: { amount: '0.00001' }, invoice_display_name: 'GPT-4o tokens' }]
    }
  ]
  const res = await api.post('/api/billing/plans', plan('all_models', charges, { description: 'Every model', pay_in_advance: false, trial_period: 7 }))
  t.equal(res.statusCode, 201, res.body)
  const created = res.json()
  t.match(created, { code: 'all_models', interval: 'monthly', amount_cents: 1000, amount_currency: 'USD', pay_in_advance: false, trial_period: 7, description: 'Every model' })
  t.same(created.charges.map((c: { charge_model: string, billable_metric_code: string }) => [c.charge_model, c.billable_metric_code]), [
    ['standard', 'tokens'], ['graduated', 'tokens'], ['package', 'tokens'], ['percentage', 'spend'], ['volume', 'tokens'], ['dynamic', 'spend'], ['standard', 'tokens']
  ])
  t.equal(created.charges[0].billable_metric_id, metric.lago_id, 'a metric code became its lago_id')
  t.same(created.charges[1].properties, charges[1].properties, 'prices stay the exact strings sent')
  t.same(created.charges[3].properties, charges[3].properties)
  t.same(created.charges[6].filters, [{ values: { model: ['gpt-4o'] }, properties: { amount: '0.00001' }, invoice_display_name: 'GPT-4o tokens' }])

  const read = await api.get('/api/billing/plans/all_models')
  t.equal(read.statusCode, 200)
  t.same(read.json(), created)
  const list = await api.get('/api/billing/plans?per_page=1')
  t.same(list.json().meta, { page: 1, per_page: 1, total_count: 1, total_pages: 1, next_page: null, prev_page: null })
  t.equal(list.json().plans[0].code, 'all_models')
})

t.test('prices must be decimal strings, and each model\'s properties its own: 400 naming the field', async (t) => {
  const { api, sim } = await setup(t)
  const before = sim.requests.total
  const cases: Array<[unknown, string, RegExp]> = [
    [{ billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: 0.002 } }, '/charges/0/properties/amount', /must be a decimal string such as "0.002"/],
    [{ billable_metric_id: 'tokens', charge_model: 'graduated', properties: { graduated_ranges: [{ from_value: 0, to_value: null, per_unit_amount: 1, flat_amount: '0' }] } },
      '/charges/0/properties/graduated_ranges/0/per_unit_amount', /decimal string/],
    [{ billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: '1e-3' } }, '/charges/0/properties/amount', /decimal string/],
    [{ billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: '-1' } }, '/charges/0/properties/amount', /decimal string/],
    [{ billable_metric_id: 'tokens', charge_model: 'package', properties: { amount: '1' } }, '/charges/0/properties/package_size', /is required/],
    [{ billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: '1', package_size: 10 } }, '/charges/0/properties/package_size', /not an allowed property/],
    [{ billable_metric_id: 'tokens', charge_model: 'standard' }, '/charges/0/properties', /is required/],
    [{ billable_metric_id: 'tokens', charge_model: 'tiered', properties: {} }, '/charges/0', /charge_model must be one of standard, graduated, package, percentage, volume, dynamic/],
    [{ charge_model: 'standard', properties: { amount: '1' } }, '/charges/0/billable_metric_id', /is required/]
  ]
  for (const [charge, field, message] of cases) {
    const res = await api.post('/api/billing/plans', plan('bad', [charge]))
    t.equal(res.statusCode, 400, JSON.stringify(charge))
    t.match(res.json(), { code: 'validation_error', details: [{ field, message }] }, res.json().message)
  }
  const interval = await api.post('/api/billing/plans', plan('bad', [], { interval: 'daily' }))
  t.match(interval.json(), { code: 'validation_error', details: [{ field: '/interval' }] })
  const cents = await api.post('/api/billing/plans', plan('bad', [], { amount_cents: 10.5 }))
  t.match(cents.json(), { code: 'validation_error', details: [{ field: '/amount_cents', message: /integer/ }] })
  t.equal(sim.requests.total, before, 'nothing reached Lago')
})

t.test('Lago\'s verdicts: unknown metric 404, taken code and invalid tiers 422 with its field errors', async (t) => {
  const { api } = await setup(t)
  const standard = { charge_model: 'standard', properties: { amount: '1' } }

  const byCode = await api.post('/api/billing/plans', plan('p1', [{ billable_metric_id: 'no_such_metric', ...standard }]))
  t.equal(byCode.statusCode, 404)
  t.same(byCode.json(), { statusCode: 404, error: 'Not Found', code: 'billable_metric_not_found', message: 'No billable metric with id or code "no_such_metric"' })
  const byId = await api.post('/api/billing/plans', plan('p1', [{ billable_metric_id: '00000000-0000-4000-8000-000000000000', ...standard }]))
  t.equal(byId.statusCode, 404)
  t.match(byId.json(), { code: 'billable_metric_not_found', message: /00000000-0000-4000-8000-000000000000/ })

  t.equal((await api.post('/api/billing/plans', plan('p1', [{ billable_metric_id: 'tokens', ...standard }]))).statusCode, 201)
  const taken = await api.post('/api/billing/plans', plan('p1', []))
  t.equal(taken.statusCode, 422)
  t.same(taken.json().details, [{ field: 'code', message: 'already exists', code: 'value_already_exist' }])
  t.equal(taken.json().message, 'Lago refused the request: code already exists')

  const gap = await api.post('/api/billing/plans', plan('p2', [{ billable_metric_id: 'tokens', charge_model: 'graduated', properties: { graduated_ranges: [range(0, 10, '1'), range(50, null, '0.5')] } }]))
  t.equal(gap.statusCode, 422)
  t.match(gap.json().details, [{ field: 'graduated_ranges', code: 'invalid_graduated_ranges' }])

  await api.post('/api/billing/metrics', { name: 'Calls', code: 'calls', aggregation_type: 'count_agg' })
  const dynamicOnCount = await api.post('/api/billing/plans', plan('p3', [{ billable_metric_id: 'calls', charge_model: 'dynamic' }]))
  t.equal(dynamicOnCount.statusCode, 422, 'dynamic needs a sum metric')
})

t.test('PUT changes a plan (charges replaced), DELETE removes it and the mapping of its customers', async (t) => {
  const { app, sim, api } = await setup(t, { LAGO_CACHE_TTL_SECONDS: '60' })
  const db = await sqlClient(t)
  const created = (await api.post('/api/billing/plans', plan('pro', [{ billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: '1' } }]))).json()
  t.equal((await api.get('/api/billing/plans/pro')).json().name, 'Plan pro')
  t.same(await lagoCallsDuring(sim, async () => await api.get('/api/billing/plans/pro')), [], 'cached')

  const keep = { id: created.charges[0].id, billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: '2' } }
  const added = { billable_metric_id: 'tokens', charge_model: 'package', properties: { amount: '5', package_size: 100 } }
  const updated = await api.put('/api/billing/plans/pro', { name: 'Pro', amount_cents: 2500, charges: [keep, added] })
  t.equal(updated.statusCode, 200, updated.body)
  t.match(updated.json(), { name: 'Pro', amount_cents: 2500, charges: [{ id: keep.id, properties: { amount: '2' } }, { charge_model: 'package' }] })
  t.same((await api.get('/api/billing/plans/pro')).json(), updated.json(), 'the cached copy was dropped')

  t.equal((await api.put('/api/billing/plans/nothing', { name: 'X' })).json().code, 'plan_not_found')
  t.equal((await api.put('/api/billing/plans/pro', {})).statusCode, 400, 'something to change')
  t.equal((await api.put('/api/billing/plans/pro', { code: 'renamed' })).statusCode, 400, 'the code is the plan\'s identity')

  await api.post('/api/customers', { external_id: 'on-pro', plan_code: 'pro' })
  t.equal((await db.query('SELECT plan_code FROM customers WHERE external_id = $1', ['on-pro'])).rows[0].plan_code, 'pro')
  const deleted = await api.delete('/api/billing/plans/pro')
  t.equal(deleted.statusCode, 200)
  t.equal(deleted.json().code, 'pro')
  t.equal((await api.get('/api/billing/plans/pro')).statusCode, 404)
  t.equal((await api.delete('/api/billing/plans/pro')).json().code, 'plan_not_found')
  t.match((await db.query('SELECT plan_code, subscription_external_id FROM customers WHERE external_id = $1', ['on-pro'])).rows[0],
    { plan_code: null, subscription_external_id: null }, 'its usage no longer goes to the terminated subscription')
  t.equal((await app.lago.listSubscriptions({ external_customer_id: 'on-pro' })).subscriptions.length, 0, 'Lago terminated it')
  t.equal((await api.get('/api/customers/on-pro')).json().subscription, null, 'the customer\'s cached copy was dropped too')
})

t.test('Lago failing while creating a plan: 502, and nothing cached', async (t) => {
  const { sim, api } = await setup(t)
  sim.faults.failNext(1, 500, { route: 'POST /api/v1/plans' })
  const res = await api.post('/api/billing/plans', plan('p', []))
  t.equal(res.statusCode, 502)
  t.equal(res.json().code, 'lago_error')
  t.equal((await api.post('/api/billing/plans', plan('p', []))).statusCode, 201, 'a retry goes through')
})
