import t from 'tap'
import { buildForwarding } from '../../../helpers/forwarding.js'
import { apiClient, lagoCallsDuring } from '../../../helpers/api.js'

const OFFLINE = { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', LAGO_CACHE_TTL_SECONDS: '60', LAGO_TIMEOUT_MS: '300' }

t.test('billable metrics: create, list, read (cached), and Lago\'s verdicts', async (t) => {
  const { sim, app } = await buildForwarding(t, OFFLINE)
  const api = apiClient(app)
  const body = { name: 'Tokens', code: 'tokens', aggregation_type: 'sum_agg', field_name: 'total_tokens', description: 'LLM tokens', filters: [{ key: 'model', values: ['gpt-4o'] }] }
  const created = await api.post('/api/billing/metrics', body)
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json(), { ...body, recurring: false, lago_id: /^[0-9a-f-]{36}$/, created_at: String })

  t.same((await api.get('/api/billing/metrics/tokens')).json(), created.json())
  t.same(await lagoCallsDuring(sim, async () => await api.get('/api/billing/metrics/tokens')), [], 'cached')
  const counted = await api.post('/api/billing/metrics', { name: 'Calls', code: 'calls', aggregation_type: 'count_agg' })
  t.equal(counted.json().field_name, null, 'count_agg needs no field')

  const list = await api.get('/api/billing/metrics')
  t.same(list.json().billable_metrics.map((m: { code: string }) => m.code).sort(), ['calls', 'tokens'])
  t.equal(list.json().meta.total_count, 2)

  const taken = await api.post('/api/billing/metrics', body)
  t.equal(taken.statusCode, 422)
  t.match(taken.json(), { code: 'lago_validation_error', details: [{ field: 'code', code: 'value_already_exist' }] })
  const noField = await api.post('/api/billing/metrics', { name: 'Max', code: 'max', aggregation_type: 'max_agg' })
  t.equal(noField.statusCode, 422)
  t.match(noField.json(), { message: 'Lago refused the request: field_name is required', details: [{ field: 'field_name', code: 'value_is_mandatory' }] })

  const missing = await api.get('/api/billing/metrics/nothing')
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { statusCode: 404, error: 'Not Found', code: 'billable_metric_not_found', message: 'No billable metric with id or code "nothing"' })

  const invalid = await api.post('/api/billing/metrics', { ...body, code: 'x', aggregation_type: 'avg_agg' })
  t.equal(invalid.statusCode, 400)
  t.match(invalid.json(), { code: 'validation_error', details: [{ field: '/aggregation_type' }] })
  t.equal((await api.post('/api/billing/metrics', { ...body, code: 'y', unit: 'tokens' })).statusCode, 400, 'unknown fields are refused')

  sim.faults.delayNext(1, 600, { route: 'GET /api/v1/billable_metrics' })
  const slow = await api.get('/api/billing/metrics?page=2')
  t.equal(slow.statusCode, 503)
  t.equal(slow.json().code, 'lago_unavailable')
})
