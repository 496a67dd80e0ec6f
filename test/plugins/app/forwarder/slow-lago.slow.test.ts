import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { seedEvent, sqlClient, uid } from '../../../helpers/app.js'
import { buildForwarding, statusCounts, until } from '../../../helpers/forwarding.js'

const LAGO_DELAY_MS = 5000
const NEW_CUSTOMERS = 50

interface LoadFigures { requests: number, statuses: Record<number, number>, p50: number, p99: number, max: number }

/** Posts one event at a time from `concurrency` callers for `ms`, and reports statuses and latencies. */
async function ingestionLoad (app: FastifyInstance, ms: number, concurrency = 8): Promise<LoadFigures> {
  const latencies: number[] = []
  const statuses: Record<number, number> = {}
  const end = Date.now() + ms
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < end) {
      const started = performance.now()
      const res = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(seedEvent({ customer_id: 'steady-customer', timestamp: Math.floor(Date.now() / 1000) })) })
      latencies.push(performance.now() - started)
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    }
  }))
  latencies.sort((a, b) => a - b)
  const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))])
  return { requests: latencies.length, statuses, p50: at(0.5), p99: at(0.99), max: Math.round(latencies[latencies.length - 1]) }
}

t.test('a slow Lago provisioning 50 new customers holds no database connection and does not slow ingestion down', async (t) => {
  const { app, sim } = await buildForwarding(t, {
    LAGO_TIMEOUT_MS: String(LAGO_DELAY_MS * 2),
    // Several workers resolving a few customers each: before the fix each held a transaction per customer.
    FORWARDER_BATCH_SIZE: '5',
    FORWARDER_CONCURRENCY: '4',
    DATABASE_POOL_MAX: '12',
    DATABASE_CONNECT_TIMEOUT_MS: '2000'
  })
  const db = await sqlClient(t)
  await until(async () => (await app.inject('/health')).json().bootstrap.status === 'done', 'bootstrap')

  await ingestionLoad(app, 1000) // warm-up
  const normal = await ingestionLoad(app, 3000)
  const before = sim.requests.total - 1

  // Every customer and subscription call now takes 5 s (Lago still processes it).
  sim.faults.add({ type: 'delay', ms: LAGO_DELAY_MS }, { route: '/api/v1/customers', times: Infinity })
  sim.faults.add({ type: 'delay', ms: LAGO_DELAY_MS }, { route: '/api/v1/subscriptions', times: Infinity })
  const customers = Array.from({ length: NEW_CUSTOMERS }, () => uid('new'))
  const res = await app.inject({
    method: 'POST',
    url: '/webhooks/litellm/batch',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(customers.map((c) => seedEvent({ customer_id: c, timestamp: Math.floor(Date.now() / 1000) })))
  })
  t.equal(res.statusCode, 202)
  // The workers are in Lago calls once Lago has seen the first subscription lookups.
  await until(() => sim.requests.entries({ route: '/api/v1/subscriptions' }).length > 0, 'provisioning started')

  // Sampled while the workers wait on Lago: transactions left open and pool callers kept waiting.
  let openTransactions = 0
  let poolWaiting = 0
  const sampling = { on: true }
  const sampler = (async () => {
    while (sampling.on) {
      // A transaction is briefly idle between its own statements; one held across a 5 s Lago call idles for seconds.
      const { rows } = await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND state_change < now() - interval '1 second'")
      openTransactions = Math.max(openTransactions, rows[0].n as number)
      poolWaiting = Math.max(poolWaiting, app.pg.pool.waitingCount)
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  const slow = await ingestionLoad(app, LAGO_DELAY_MS + 3000)
  sampling.on = false
  await sampler

  // Without ingestion, while the workers still wait on Lago: is there a moment with no pooled connection in use?
  // Before the fix every worker kept one per customer being provisioned, the whole time.
  let fewestInUse = Infinity
  const quietEnd = Date.now() + 1000
  while (Date.now() < quietEnd) {
    fewestInUse = Math.min(fewestInUse, app.pg.pool.totalCount - app.pg.pool.idleCount)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.ok(sim.requests.entries({ route: '/api/v1/subscriptions', method: 'POST', since: before }).length < NEW_CUSTOMERS, 'still provisioning')

  t.comment(`ingestion, Lago normal: ${JSON.stringify(normal)}`)
  t.comment(`ingestion, Lago answering in ${LAGO_DELAY_MS} ms while provisioning ${NEW_CUSTOMERS} customers: ${JSON.stringify(slow)}`)
  t.comment(`max transactions idle in transaction for over 1 s: ${openTransactions}, max pool waiters under load: ${poolWaiting}, fewest connections in use without load: ${fewestInUse}`)
  t.same(Object.keys(slow.statuses), ['202'], 'every ingestion request accepted (no 503)')
  t.ok(slow.requests > 0)
  t.equal(openTransactions, 0, 'no transaction stays open while Lago is called')
  t.equal(fewestInUse, 0, 'no pooled connection is held while Lago answers')

  // And the customers do get provisioned, each once.
  sim.faults.clear()
  await until(async () => {
    const { rows } = await db.query("SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id LIKE 'new-%' AND status = 'forwarded'")
    return rows[0].n === NEW_CUSTOMERS
  }, 'all forwarded', 120_000)
  const creations = sim.requests.entries({ route: '/api/v1/subscriptions', method: 'POST', since: before })
  t.equal(creations.length, NEW_CUSTOMERS, 'one subscription created per new customer')
  t.same(await statusCounts(db, customers[0]), { forwarded: 1 })
})
