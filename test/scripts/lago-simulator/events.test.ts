import t from 'tap'
import { clientFor, nowSeconds, raw, seedCatalog, simulator, usageEvent } from '../../helpers/lago.js'

t.test('Bearer auth: a missing or wrong key is 401 with Lago\'s body, before anything else', async (t) => {
  const sim = await simulator(t)
  for (const authorization of ['', 'Bearer wrong', 'test-key']) {
    const res = await raw(sim, 'POST', '/api/v1/events', { event: usageEvent('a', 's') }, { authorization })
    t.equal(res.status, 401, `"${authorization}"`)
    t.same(res.json(), { status: 401, error: 'Unauthorized' })
  }
  t.equal((await raw(sim, 'GET', '/api/v1/plans', undefined, { authorization: 'Token   test-key' })).status, 200, 'the second token of the header is the key')
  t.equal(sim.state.eventCount, 0)
})

t.test('POST /events: 200 with the event; Lago-only fields; repeat is 422 value_already_exist per subscription', async (t) => {
  const sim = await simulator(t)
  const body = { event: { ...usageEvent('tx-1', 'sub-1'), timestamp: '1741219251.59', external_customer_id: 'dropped' } }
  const res = await raw(sim, 'POST', '/api/v1/events', body)
  t.equal(res.status, 200, 'creates answer 200, not 201')
  const event = res.json().event
  t.match(event, { transaction_id: 'tx-1', external_subscription_id: 'sub-1', lago_customer_id: null, lago_subscription_id: null, timestamp: '2025-03-06T00:00:51.590Z', precise_total_amount_cents: '0.375' })
  t.notOk('external_customer_id' in event, 'external_customer_id is not accepted since Lago 1.7 (silently dropped)')

  const again = await raw(sim, 'POST', '/api/v1/events', body)
  t.equal(again.status, 422)
  t.same(again.json(), { status: 422, error: 'Unprocessable Entity', code: 'validation_errors', error_details: { transaction_id: ['value_already_exist'] } })
  const otherSubscription = await raw(sim, 'POST', '/api/v1/events', { event: usageEvent('tx-1', 'sub-2') })
  t.equal(otherSubscription.status, 200, 'the same transaction_id under another subscription is another event')

  t.equal((await raw(sim, 'POST', '/api/v1/events', { event: { ...usageEvent('tx-2', 'sub-1'), timestamp: '1741219251' } })).status, 200, 'a numeric string is a timestamp')
  t.equal((await raw(sim, 'POST', '/api/v1/events', { event: { ...usageEvent('tx-6', 'sub-1'), timestamp: 1741219251 } })).status, 200, 'an integer is a timestamp')
  // The contract (OpenAPI: oneOf integer, string) puts decimals in a string only.
  const decimalNumber = await raw(sim, 'POST', '/api/v1/events', { event: { ...usageEvent('tx-5', 'sub-1'), timestamp: 1741219251.59 } })
  t.same(decimalNumber.json().error_details, { timestamp: ['invalid_format'] }, 'a JSON number with decimals is refused')
  const iso = await raw(sim, 'POST', '/api/v1/events', { event: { ...usageEvent('tx-3', 'sub-1'), timestamp: '2025-03-06T00:00:51Z' } })
  t.same(iso.json().error_details, { timestamp: ['invalid_format'] })
  const missing = await raw(sim, 'POST', '/api/v1/events', { event: { external_subscription_id: 'sub-1' } })
  t.same(missing.json().error_details, { transaction_id: ['value_is_mandatory'], code: ['value_is_mandatory'] })
  const noRoot = await raw(sim, 'POST', '/api/v1/events', { transaction_id: 'x' })
  t.equal(noRoot.status, 400)
  t.match(noRoot.json(), { status: 400, error: /param is missing.*event/ })
  const noTimestamp = await raw(sim, 'POST', '/api/v1/events', { event: { transaction_id: 'tx-4', external_subscription_id: 'sub-1', code: 'ai_usage' } })
  t.ok(Math.abs(Date.parse(noTimestamp.json().event.timestamp) - Date.now()) < 5000, 'absent timestamp is the time of reception')
})

t.test('POST /events/batch: atomic, index-keyed errors, in-batch duplicates, limits', async (t) => {
  const sim = await simulator(t)
  const ok = await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('b-1', 'sub-1'), usageEvent('b-2', 'sub-1')] })
  t.equal(ok.status, 200)
  t.same(ok.json().events.map((e: { transaction_id: string }) => e.transaction_id), ['b-1', 'b-2'])

  const mixed = await raw(sim, 'POST', '/api/v1/events/batch', {
    events: [usageEvent('b-3', 'sub-1'), usageEvent('b-1', 'sub-1'), { ...usageEvent('b-4', 'sub-1'), code: '' }, usageEvent('b-5', 'sub-1', {}, { timestamp: 'yesterday' }), usageEvent('b-3', 'sub-9')]
  })
  t.equal(mixed.status, 422)
  t.same(mixed.json().error_details, {
    1: { transaction_id: ['value_already_exist'] },
    2: { code: ['value_is_mandatory'] },
    3: { timestamp: ['invalid_format'] },
    4: { transaction_id: ['value_already_exist'] }
  }, 'inside one batch a transaction_id must be unique even across subscriptions')
  t.equal(sim.state.eventCount, 2, 'nothing of the refused batch was stored')

  const hundred = Array.from({ length: 100 }, (_, i) => usageEvent(`c-${i}`, 'sub-1'))
  t.equal((await raw(sim, 'POST', '/api/v1/events/batch', { events: hundred })).status, 200, '100 is allowed')
  const tooMany = await raw(sim, 'POST', '/api/v1/events/batch', { events: [...hundred, usageEvent('c-100', 'sub-1')].map((e) => ({ ...e, transaction_id: `d-${e.transaction_id}` })) })
  t.same(tooMany.json(), { status: 422, error: 'Unprocessable Entity', code: 'validation_errors', error_details: { events: ['too_many_events'] } })
  t.same((await raw(sim, 'POST', '/api/v1/events/batch', { events: [] })).json().error_details, { events: ['no_events'] })
  t.same((await raw(sim, 'POST', '/api/v1/events/batch', {})).json().error_details, { events: ['no_events'] })
  t.equal(sim.state.eventCount, 102)
  t.match(sim.requests.entries().map((r) => r.eventCount), [2, 5, 100, 101, 0, 0])
})

t.test('default mode is real Lago: unknown code or subscription and missing subscription id are stored, never billed', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client)
  await client.createBillableMetric({ name: 'Other', code: 'other_metric', aggregation_type: 'count_agg' })
  const res = await raw(sim, 'POST', '/api/v1/events/batch', {
    events: [
      usageEvent('ok-1', 'sub-1'),
      { ...usageEvent('e-1', 'sub-1'), code: 'no_such_metric' },
      usageEvent('e-2', 'no-such-subscription'),
      { transaction_id: 'e-3', code: 'ai_usage', timestamp: nowSeconds(), properties: { total_tokens: 5 } },
      { ...usageEvent('e-4', 'sub-1'), code: 'other_metric' },
      usageEvent('e-5', 'sub-1', {}, { timestamp: nowSeconds() - 86_400 }),
      usageEvent('e-6', 'sub-1', { total_tokens: 'many' })
    ]
  })
  t.equal(res.status, 200, 'Lago validates neither the subscription nor the code at ingestion')
  t.same(sim.state.unbilledEvents().map((u) => [u.event.transaction_id, u.reason]), [
    ['e-1', 'unknown_code'],
    ['e-2', 'unknown_subscription'],
    ['e-3', 'missing_external_subscription_id'],
    ['e-4', 'metric_not_in_plan'],
    ['e-5', 'outside_subscription_period'],
    ['e-6', 'missing_aggregation_property']
  ])
  const control = await raw(sim, 'GET', '/__simulator/unbilled-events')
  t.equal(control.json().unbilled_events.length, 6, 'also over the control API')
})

t.test('strictEvents: the issue\'s 422 for a missing subscription id or an unknown code, index-keyed and atomic', async (t) => {
  const sim = await simulator(t, { strictEvents: true })
  const { client } = clientFor(t, sim)
  await seedCatalog(client)
  const res = await raw(sim, 'POST', '/api/v1/events/batch', {
    events: [usageEvent('ok-1', 'sub-1'), { ...usageEvent('e-1', 'sub-1'), code: 'no_such_metric' }, { ...usageEvent('e-2', ''), external_subscription_id: undefined }]
  })
  t.equal(res.status, 422)
  t.same(res.json().error_details, { 1: { code: ['value_is_invalid'] }, 2: { external_subscription_id: ['value_is_mandatory'] } })
  t.equal(sim.state.eventCount, 0, 'atomic')
  const single = await raw(sim, 'POST', '/api/v1/events', { event: { ...usageEvent('e-3', 'sub-1'), code: 'nope' } })
  t.same(single.json().error_details, { code: ['value_is_invalid'] })
  // Switchable at run time over the control API.
  t.same((await raw(sim, 'PUT', '/__simulator/settings', { strict_events: false })).json(), { strict_events: false, max_batch_size: 100, rate_limit: false })
  t.equal((await raw(sim, 'POST', '/api/v1/events', { event: { ...usageEvent('e-3', 'sub-1'), code: 'nope' } })).status, 200)
})

t.test('GET /events/:transaction_id and the list with filters and pagination', async (t) => {
  const sim = await simulator(t)
  await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('g-1', 'sub-1'), usageEvent('g-2', 'sub-2'), usageEvent('g.3', 'sub-1')] })
  t.equal((await raw(sim, 'GET', '/api/v1/events/g.3')).json().event.transaction_id, 'g.3', 'ids may contain dots')
  t.same((await raw(sim, 'GET', '/api/v1/events/nope')).json(), { status: 404, error: 'Not Found', code: 'event_not_found' })
  const page = (await raw(sim, 'GET', '/api/v1/events?external_subscription_id=sub-1&per_page=1&page=2')).json()
  t.equal(page.events.length, 1)
  t.same(page.meta, { current_page: 2, next_page: null, prev_page: 1, total_pages: 2, total_count: 2 })
  t.same((await raw(sim, 'GET', '/api/v1/events?code=none')).json(), { events: [], meta: { current_page: 0, next_page: null, prev_page: null, total_pages: 0, total_count: 0 } })
})
