import t from 'tap'
import { seedEvent, sqlClient, uid } from '../../../helpers/app.js'
import { buildForwarding, ingest, statusCounts, storedFor, until } from '../../../helpers/forwarding.js'

t.test('Lago refusing the key pauses forwarding, says so in /health, dead-letters nothing, and resumes', async (t) => {
  const { app, sim } = await buildForwarding(t)
  const db = await sqlClient(t)
  const customer = uid('key-trouble')
  // Warm up: bootstrap and one delivery while the key is good.
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) })])
  await until(async () => (await statusCounts(db, customer)).forwarded === 1, 'the first event forwarded')

  sim.settings.apiKey = 'rotated-key' // Lago now answers 401 to ours
  const events = Array.from({ length: 50 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  await ingest(app, events)
  await until(async () => (await app.inject('/health')).json().forwarder.status === 'unauthorized', 'the pause to show in /health')
  const health = (await app.inject('/health')).json()
  t.equal(health.status, 'degraded')
  t.match(health.forwarder, { status: 'unauthorized', last_error: /401/, next_probe_at: String })
  const refusedBatches = (): number => sim.requests.entries({ route: '/api/v1/events/batch' }).filter((e) => e.status === 401).length
  const refusedProbes = (): number => sim.requests.entries({ route: '/api/v1/billable_metrics/:code' }).filter((e) => e.status === 401).length
  // A worker whose batch was already on its way when another one met the 401 gets a 401 too: once every claimed
  // event is back in the queue, no batch is in flight, and from then on only probes may go out.
  await until(async () => (await db.query('SELECT count(*)::int AS n FROM litellm_usage_events e JOIN usage_event_claims c ON c.event_id = e.id WHERE e.customer_external_id = $1', [customer])).rows[0].n === 0, 'every claimed event released')
  const refusedAtPause = refusedBatches()
  const probesAtPause = refusedProbes()
  await until(() => refusedProbes() >= probesAtPause + 3, 'three more probe intervals of the pause')
  const during = await statusCounts(db, customer)
  t.same(during, { forwarded: 1, pending: 50 }, 'nothing dead, nothing failed, no attempts spent')
  const attempts = (await db.query('SELECT max(attempts)::int AS a FROM litellm_usage_events WHERE customer_external_id = $1 AND status = $2', [customer, 'pending'])).rows[0].a
  t.equal(attempts, 0)
  const workers = app.config.FORWARDER_CONCURRENCY
  t.ok(refusedAtPause <= workers, `at most one refused batch per worker (${refusedAtPause} for ${workers} workers)`)
  t.equal(refusedBatches(), refusedAtPause, 'while paused, only probes go out: no more batches')

  sim.settings.apiKey = 'test-key'
  await until(async () => (await statusCounts(db, customer)).forwarded === 51, 'forwarding to resume')
  t.equal((await app.inject('/health')).json().forwarder.status, 'running')
  t.equal(storedFor(sim, events.map((e) => e.request_id)).size, 50)
})

t.test('a Lago outage pauses everything, spends no attempts, creates no dead letters, and recovers', async (t) => {
  const { app, sim } = await buildForwarding(t, { MAX_ATTEMPTS: '2' })
  const db = await sqlClient(t)
  const customer = uid('outage')
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) })])
  await until(async () => (await statusCounts(db, customer)).forwarded === 1, 'warm up')

  sim.faults.outage(3000, 'drop')
  const events = Array.from({ length: 120 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  await ingest(app, events)
  await until(async () => (await app.inject('/health')).json().forwarder.status === 'lago_unavailable', 'the pause')
  const during = await statusCounts(db, customer)
  t.notOk(during.dead, 'no dead letters during the outage, even with MAX_ATTEMPTS=2')
  await until(async () => (await statusCounts(db, customer)).forwarded === 121, 'recovery after the outage', 30_000)
  const stored = storedFor(sim, events.map((e) => e.request_id))
  t.equal(stored.size, 120)
  t.ok([...stored.values()].every((n) => n === 1))
  const maxAttempts = (await db.query('SELECT max(attempts)::int AS a FROM litellm_usage_events WHERE customer_external_id = $1', [customer])).rows[0].a
  t.ok(maxAttempts <= 2, `the outage cost at most the one failed send per event (${maxAttempts})`)
})

t.test('429 with Retry-After pauses all workers for that long', async (t) => {
  const { app, sim } = await buildForwarding(t)
  const db = await sqlClient(t)
  const customer = uid('throttled')
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) })])
  await until(async () => (await statusCounts(db, customer)).forwarded === 1, 'warm up')
  sim.faults.rateLimitNext(1, { retryAfterSeconds: 1 }, { route: 'POST /api/v1/events/batch' })
  const events = Array.from({ length: 10 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  const started = Date.now()
  await ingest(app, events)
  await until(async () => (await app.inject('/health')).json().forwarder.status === 'rate_limited', 'the pause')
  await until(async () => (await statusCounts(db, customer)).forwarded === 11, 'delivery after the wait')
  t.ok(Date.now() - started >= 900, 'Retry-After was honoured')
  const attempts = (await db.query('SELECT max(attempts)::int AS a FROM litellm_usage_events WHERE customer_external_id = $1', [customer])).rows[0].a
  t.equal(attempts, 1, 'a 429 spends no attempt')
})

t.test('a pause stops the one-by-one sends of a refused batch: nothing more goes out until it ends', async (t) => {
  const { app, sim } = await buildForwarding(t, { FORWARDER_CONCURRENCY: '1' })
  const db = await sqlClient(t)
  const customer = uid('isolating')
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) })])
  await until(async () => (await statusCounts(db, customer)).forwarded === 1, 'warm up')
  // A 400 naming no event makes the forwarder send the batch's events one by one; the first of those meets a 429.
  const route = 'POST /api/v1/events/batch'
  sim.faults.failNext(1, 400, { route })
  sim.faults.rateLimitNext(1, { retryAfterSeconds: 2 }, { route })
  const events = Array.from({ length: 20 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  await ingest(app, events)
  await until(async () => (await app.inject('/health')).json().forwarder.status === 'rate_limited', 'the pause')
  await until(async () => (await statusCounts(db, customer)).forwarded === 21, 'delivery after the pause')
  // The pause ends with the first probe after the 429 (nothing else probes here): between the two, no batch.
  const log = sim.requests.entries()
  const throttled = log.findIndex((e) => e.route === '/api/v1/events/batch' && e.status === 429)
  const probe = log.findIndex((e, i) => i > throttled && e.route === '/api/v1/billable_metrics/:code')
  t.ok(throttled >= 0 && probe > throttled, 'the 429, then the probe that ends the pause')
  t.same(log.slice(throttled + 1, probe).filter((e) => e.route === '/api/v1/events/batch'), [], 'no send while paused, not even the rest of the one-by-one sends')
  t.ok(Date.parse(log[probe].at) - Date.parse(log[throttled].at) >= 1900, 'the pause lasted Retry-After')
  t.same(await statusCounts(db, customer), { forwarded: 21 }, 'nothing dead')
  t.ok([...storedFor(sim, events.map((e) => e.request_id)).values()].every((n) => n === 1), 'each once')
})

t.test('a batch that keeps failing while Lago is up is retried with backoff, then dead-lettered after MAX_ATTEMPTS', async (t) => {
  const { app, sim } = await buildForwarding(t, { MAX_ATTEMPTS: '3' })
  const db = await sqlClient(t)
  const customer = uid('poison')
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) })])
  await until(async () => (await statusCounts(db, customer)).forwarded === 1, 'warm up')
  // Lago crashes on every batch (500) but answers its other endpoints: the failure belongs to the events.
  sim.faults.failNext(Infinity, 500, { route: 'POST /api/v1/events/batch' })
  const events = Array.from({ length: 5 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  await ingest(app, events)
  await until(async () => (await statusCounts(db, customer)).dead === 5, 'dead letters after 3 attempts')
  const rows = (await db.query('SELECT attempts, last_error FROM litellm_usage_events WHERE customer_external_id = $1 AND status = \'dead\'', [customer])).rows
  t.ok(rows.every((r) => r.attempts === 3), 'exactly MAX_ATTEMPTS sends')
  t.ok(rows.every((r) => r.last_error.kind === 'exhausted' && r.last_error.status === 500), 'kept with the reason')
  // Backoff jitter spreads the events over several batches; each event still went out exactly three times.
  const sends = new Map<string, number>()
  for (const entry of sim.requests.entries({ route: '/api/v1/events/batch' }).filter((e) => e.status === 500)) {
    for (const text of entry.events ?? []) {
      const id = JSON.parse(text).transaction_id as string
      sends.set(id, (sends.get(id) ?? 0) + 1)
    }
  }
  t.same(events.map((e) => sends.get(e.request_id as string)), [3, 3, 3, 3, 3])
})
