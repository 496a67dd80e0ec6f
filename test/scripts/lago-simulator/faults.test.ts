import t from 'tap'
import { LagoUnavailableError } from '../../../plugins/app/lago/errors.js'
import { FaultController } from '../../../scripts/lago-simulator/faults.js'
import { clientFor, raw, simulator, usageEvent } from '../../helpers/lago.js'
import { until } from '../../helpers/forwarding.js'

const BATCH = 'POST /api/v1/events/batch'

t.test('faults over the HTTP control API: scoped, counted, removable', async (t) => {
  const sim = await simulator(t)
  const added = await raw(sim, 'POST', '/__simulator/faults', { type: 'status', status: 503, route: BATCH, times: 2 })
  t.equal(added.status, 200)
  t.equal((await raw(sim, 'GET', '/api/v1/plans')).status, 200, 'other routes are untouched')
  t.equal((await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('a', 's')] })).status, 503)
  t.equal((await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('a', 's')] })).status, 503)
  t.equal((await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('a', 's')] })).status, 200, 'times: 2')

  const forever = (await raw(sim, 'POST', '/__simulator/faults', { type: 'status', status: 500, body: { status: 500, error: 'custom' }, times: null })).json().id
  t.same((await raw(sim, 'GET', '/api/v1/plans')).json(), { status: 500, error: 'custom' })
  t.same((await raw(sim, 'GET', '/api/v1/plans')).status, 500)
  t.match((await raw(sim, 'GET', '/__simulator/faults')).json(), { rules: [{ id: forever, remaining: null }], applied: { status: 4 } })
  t.equal((await raw(sim, 'DELETE', `/__simulator/faults/${String(forever)}`)).status, 200)
  t.equal((await raw(sim, 'GET', '/api/v1/plans')).status, 200)

  t.equal((await raw(sim, 'POST', '/__simulator/faults', { type: 'explode' })).status, 400, 'unknown fault types are refused')
  t.equal((await raw(sim, 'POST', '/__simulator/faults', { type: 'delay' })).status, 400, 'a delay needs ms')
})

t.test('429 over HTTP: Retry-After seconds or date, x-ratelimit-* headers, nothing stored', async (t) => {
  const sim = await simulator(t)
  await raw(sim, 'POST', '/__simulator/faults', { type: 'rate_limit', retryAfterSeconds: 5, limit: 500 })
  const seconds = await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('a', 's')] })
  t.equal(seconds.status, 429)
  t.match(seconds.headers, { 'retry-after': '5', 'x-ratelimit-limit': '500', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '5' })
  await raw(sim, 'POST', '/__simulator/faults', { type: 'rate_limit', retryAfterSeconds: 5, retryAfterAsDate: true })
  const date = await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('a', 's')] })
  t.match(date.headers['retry-after'], /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/)
  t.equal(sim.state.eventCount, 0)
})

t.test('reject chosen events over HTTP: the whole batch is refused with index-keyed errors', async (t) => {
  const sim = await simulator(t)
  await raw(sim, 'POST', '/__simulator/faults/reject-events', { transaction_ids: ['bad-1'], errors: { properties: ['value_is_invalid'] } })
  await raw(sim, 'POST', '/__simulator/faults/reject-events', { properties: { model: 'forbidden' } })
  const res = await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('ok', 's'), usageEvent('bad-1', 's'), usageEvent('bad-2', 's', { model: 'forbidden' })] })
  t.same(res.json().error_details, { 1: { properties: ['value_is_invalid'] }, 2: { code: ['value_is_invalid'] } })
  t.equal(sim.state.eventCount, 0, 'rolled back')
  t.equal((await raw(sim, 'POST', '/api/v1/events/batch', { events: [usageEvent('ok', 's')] })).status, 200, 'the rest goes through on resend')
  // In process, a predicate too.
  sim.faults.rejectEvents({ match: (e) => String(e.transaction_id).startsWith('pred-'), times: 1 })
  t.equal((await raw(sim, 'POST', '/api/v1/events', { event: usageEvent('pred-1', 's') })).status, 422)
  t.equal((await raw(sim, 'POST', '/api/v1/events', { event: usageEvent('pred-2', 's') })).status, 200, 'times: 1')
})

t.test('outages: 503s, dropped connections, refused connections, each for a while', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await raw(sim, 'POST', '/__simulator/faults/outage', { duration_ms: 300, mode: '503' })
  t.equal((await raw(sim, 'GET', '/api/v1/plans')).status, 503)
  await until(async () => (await raw(sim, 'GET', '/api/v1/plans')).status === 200, 'the end of the 503 window')
  t.pass('over after the window')

  sim.faults.outage(300, 'drop')
  t.equal((await client.listPlans().catch((err: unknown) => err) as LagoUnavailableError).kind, 'network')
  await until(async () => await client.listPlans().then(() => true, () => false), 'the end of the drop window')
  t.equal((await client.listPlans()).meta.total_count, 0)

  sim.faults.outage(400, 'refuse')
  const refused = await client.listPlans().catch((err: unknown) => err)
  t.ok(refused instanceof LagoUnavailableError)
  t.match((refused as LagoUnavailableError).kind, /connection_refused|network/, 'open keep-alive sockets are closed, new ones refused')
  t.equal((await client.listPlans().catch((err: unknown) => err) as LagoUnavailableError).kind, 'connection_refused')
  await until(async () => await client.listPlans().then(() => true, () => false), 'the end of the refusal window')
  t.equal((await client.listPlans()).meta.total_count, 0, 'listening again on the same port')
  // Each window counted the requests it met (the waits above poll through the window).
  t.ok(sim.faults.applied.outage_503 >= 1 && sim.faults.applied.outage_drop >= 1, JSON.stringify(sim.faults.applied))
})

t.test('chaos: the same seed gives the same faults; event rejections are stable per transaction_id', async (t) => {
  const sequence = (seed: number): Array<string | null> => {
    const faults = new FaultController()
    faults.chaos({ seed, probabilities: { status503: 0.2, drop: 0.1, storeThenDrop: 0.1, rateLimit: 0.1 } })
    return Array.from({ length: 200 }, () => faults.take('POST', '/api/v1/events/batch')?.type ?? null)
  }
  t.same(sequence(42), sequence(42))
  t.not(JSON.stringify(sequence(42)), JSON.stringify(sequence(43)))
  const kinds = sequence(7)
  const share = (k: string | null): number => kinds.filter((x) => x === k).length / kinds.length
  t.ok(share(null) > 0.3 && share(null) < 0.7, `about half the requests pass untouched (${share(null)})`)
  t.ok(kinds.includes('store_then_drop') && kinds.includes('drop') && kinds.includes('rate_limit'))
  t.throws(() => new FaultController().chaos({ seed: 1, probabilities: { status500: 0.8, drop: 0.3 } }), RangeError)

  const faults = new FaultController()
  faults.chaos({ seed: 9, probabilities: {}, rejectEventProbability: 0.3 })
  const verdicts = (): boolean[] => {
    const reject = faults.rejector('POST', '/api/v1/events/batch')
    return Array.from({ length: 100 }, (_, i) => reject?.({ transaction_id: `tx-${i}` }) !== null)
  }
  const first = verdicts()
  t.same(verdicts(), first, 'a retried event gets the same verdict')
  t.ok(first.filter(Boolean).length > 10 && first.filter(Boolean).length < 50)
})

t.test('chaos with maxFaultsPerEvent: no event meets more failing faults than that, whatever the order of sends', async (t) => {
  const faults = new FaultController()
  faults.chaos({ seed: 3, probabilities: { status500: 0.5, drop: 0.3, delay: 0.2 }, maxFaultsPerEvent: 2 })
  const met = new Map<string, number>()
  let failing = 0
  // Overlapping batches of 5 out of 20 events, sent 400 times in a fixed pseudo-random order.
  let seed = 11
  const next = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed }
  for (let i = 0; i < 400; i++) {
    const start = next() % 16
    const ids = Array.from({ length: 5 }, (_, k) => `tx-${start + k}`)
    const fault = faults.take('POST', '/api/v1/events/batch', ids)
    if (fault === null || fault.type === 'delay') continue
    failing++
    for (const id of ids) met.set(id, (met.get(id) ?? 0) + 1)
  }
  t.ok(failing >= 4, `failing faults were injected (${failing})`)
  t.ok([...met.values()].every((n) => n <= 2), `at most 2 per event: ${JSON.stringify(Object.fromEntries(met))}`)
  t.ok(faults.applied.chaos_spared > 0, 'and some sends were spared for it')
})

t.test('chaos over HTTP on a running simulator, then off', async (t) => {
  const sim = await simulator(t)
  t.equal((await raw(sim, 'POST', '/__simulator/faults/chaos', { seed: 1, probabilities: { status503: 1 } })).status, 200)
  t.equal((await raw(sim, 'GET', '/api/v1/plans')).status, 503)
  await raw(sim, 'DELETE', '/__simulator/faults/chaos')
  t.equal((await raw(sim, 'GET', '/api/v1/plans')).status, 200)
})

t.test('request log: method, path, status or dropped, body size, event count, fault', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await client.createBatchEvents([usageEvent('l-1', 's'), usageEvent('l-2', 's')])
  sim.faults.storeThenDropNext(1, { route: BATCH })
  await client.createBatchEvents([usageEvent('l-3', 's')]).catch(() => {})
  await raw(sim, 'GET', '/api/v1/plans', undefined, { authorization: 'Bearer nope' })
  const log = (await raw(sim, 'GET', '/__simulator/requests')).json()
  t.equal(log.total, 3)
  t.match(log.requests, [
    { seq: 0, method: 'POST', path: '/api/v1/events/batch', route: '/api/v1/events/batch', status: 200, eventCount: 2, fault: null, stored: true },
    { seq: 1, status: 'dropped', eventCount: 1, fault: 'store_then_drop', stored: true },
    { seq: 2, method: 'GET', status: 401, eventCount: 0, stored: false }
  ])
  t.ok(log.requests[0].bodyBytes > 100)
  t.equal((await raw(sim, 'GET', '/__simulator/requests?since=1')).json().requests.length, 1)
  t.equal(sim.requests.entries({ route: '/api/v1/events/batch' }).length, 2)
  await raw(sim, 'DELETE', '/__simulator/requests')
  t.equal(sim.requests.total, 0)
})

t.test('Lago Cloud rate limit (opt-in): x-ratelimit-* on every answer, 429 past the limit', async (t) => {
  const sim = await simulator(t, { rateLimit: { other: 3 } })
  const answers = []
  for (let i = 0; i < 7; i++) answers.push(await raw(sim, 'GET', '/api/v1/plans'))
  t.match(answers[0].headers, { 'x-ratelimit-limit': '3', 'x-ratelimit-remaining': '2' })
  t.ok(answers.some((a) => a.status === 429), 'seven requests within at most two one-second windows exceed 3 per second')
  const limited = answers.find((a) => a.status === 429)
  t.match(limited?.headers, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' })
  t.equal((await raw(sim, 'POST', '/api/v1/events', { event: usageEvent('rl', 's') })).headers['x-ratelimit-limit'], '500', 'events have their own bucket')
  const plain = await simulator(t)
  t.equal((await raw(plain, 'GET', '/api/v1/plans')).headers['x-ratelimit-limit'], undefined, 'self-hosted Lago sends none')
})

t.test('control token, reset and state', async (t) => {
  const sim = await simulator(t, { controlToken: 'secret' })
  t.equal((await raw(sim, 'GET', '/__simulator/state')).status, 401)
  const headers = { 'x-simulator-token': 'secret' }
  await raw(sim, 'POST', '/api/v1/customers', { customer: { external_id: 'c' } })
  t.match((await raw(sim, 'GET', '/__simulator/state', undefined, headers)).json(), { customers: 1, events: 0, settings: { strictEvents: false, maxBatchSize: 100, rate_limit: false } })
  t.equal((await raw(sim, 'POST', '/__simulator/reset', undefined, headers)).status, 200)
  t.match((await raw(sim, 'GET', '/__simulator/state', undefined, headers)).json(), { customers: 0 })
  t.equal(sim.requests.total, 0)
  t.equal((await raw(sim, 'GET', '/__simulator/events', undefined, headers)).json().events.length, 0)
})
