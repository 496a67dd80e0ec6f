import t from 'tap'
import { sqlClient, uid } from '../../../helpers/app.js'
import { buildForwarding, ingest, until } from '../../../helpers/forwarding.js'
import Big from 'big.js'

// The acceptance run: 10,000 events while Lago fails at random (500s, 503s, 429s, dropped
// connections, replies lost after the batch was stored, stalls past the client's timeout) and is down for
// 30 seconds in the middle. Every event must end in Lago exactly once, with no dead letters, and every
// customer's tokens and cost must add up to the last decimal.
t.test('10,000 events through random Lago failures and a 30-second outage: each exactly once, exact totals', async (t) => {
  // The simulator injects at most FAULTS_PER_EVENT failing faults into the sends that carry any one event, so
  // whatever the timing an event fails at most FAULTS_PER_EVENT + 1 times (the +1: a send dropped in the last
  // instant of the outage whose probe finds Lago back). MAX_ATTEMPTS is one more, so no event can be dead-lettered
  // by design; dead-lettering after MAX_ATTEMPTS is tested in pauses.test.ts. The client's timeout (2 s) sits far
  // above a loaded machine's answers and below the stall fault.
  const FAULTS_PER_EVENT = 5
  const { app, sim } = await buildForwarding(t, {
    LAGO_PLAN_CHARGE_MODEL: 'dynamic',
    LAGO_TIMEOUT_MS: '2000',
    MAX_ATTEMPTS: String(FAULTS_PER_EVENT + 2),
    RETRY_BASE_DELAY_MS: '200',
    RETRY_MAX_DELAY_MS: '4000',
    FORWARDER_LEASE_MS: '10000'
  }, {}, { lagoProbeMaxIntervalMs: 1000 })
  const db = await sqlClient(t)
  sim.faults.chaos({
    seed: 20261124,
    route: 'POST /api/v1/events/batch',
    probabilities: { status500: 0.06, status502: 0.02, status503: 0.03, rateLimit: 0.03, drop: 0.04, storeThenDrop: 0.05, storeThenStall: 0.03, delay: 0.04 },
    stallMs: 2500,
    maxFaultsPerEvent: FAULTS_PER_EVENT,
    delayMs: 100,
    retryAfterSeconds: 1
  })

  const run = uid('chaos')
  const customers = Array.from({ length: 20 }, (_, i) => `${run}-customer-${i}`)
  const now = Math.floor(Date.now() / 1000)
  let seed = 7
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
  const events = Array.from({ length: 10_000 }, (_, i) => {
    const input = Math.floor(random() * 5000)
    const output = Math.floor(random() * 2000)
    // Costs with up to 9 decimals, some as JSON numbers and some as strings.
    const micro = Math.floor(random() * 1e9)
    const cost = `${Math.floor(micro / 1e9)}.${String(micro % 1e9).padStart(9, '0')}`
    return {
      request_id: `${run}-${i}`,
      customer_id: customers[i % customers.length],
      model: i % 3 === 0 ? 'claude-3' : 'gpt-4o',
      provider: i % 3 === 0 ? 'anthropic' : 'openai',
      tokens_input: input,
      tokens_output: output,
      cost_usd: i % 2 === 0 ? cost : Number(cost),
      timestamp: now - 60 + (i % 50)
    }
  })

  t.equal(await ingest(app, events.slice(0, 4000)), 4000)
  await until(async () => (await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE status = \'forwarded\' AND request_id LIKE $1', [`${run}-%`])).rows[0].n >= 1500, 'forwarding under way', 60_000)
  sim.faults.outage(30_000, 'drop')
  t.equal(await ingest(app, events.slice(4000)), 6000, 'ingestion keeps accepting during the outage')
  await until(async () => (await app.inject('/health')).json().forwarder.status === 'lago_unavailable', 'the outage to pause forwarding', 10_000)
  const statusesNow = async (): Promise<Array<{ status: string, n: number }>> => (await db.query('SELECT status, count(*)::int AS n FROM litellm_usage_events WHERE request_id LIKE $1 GROUP BY status ORDER BY status', [`${run}-%`])).rows
  try {
    await until(async () => {
      const now = await statusesNow()
      if (now.some((s) => s.status === 'dead')) throw new Error('an event was dead-lettered')
      return now.length === 1 && now[0].status === 'forwarded' && now[0].n === 10_000
    }, 'all 10,000 forwarded', 150_000)
  } catch (err) {
    // Say where things stand, so that a failure on a loaded machine can be told from a lost event.
    const dead = (await db.query('SELECT request_id, attempts, last_error FROM litellm_usage_events WHERE request_id LIKE $1 AND status = \'dead\' LIMIT 3', [`${run}-%`])).rows
    const attempts = (await db.query('SELECT event_type, http_status, left(error, 60) AS error, count(*)::int AS n FROM webhook_delivery_logs GROUP BY 1, 2, 3 ORDER BY n DESC')).rows
    t.fail(`${(err as Error).message}: ${JSON.stringify({ statuses: await statusesNow(), dead, forwarder: (await app.inject('/health')).json().forwarder, faults: sim.faults.applied, attempts })}`)
    return
  }

  const { rows: [{ most }] } = await db.query('SELECT max(attempts)::int AS most FROM litellm_usage_events WHERE request_id LIKE $1', [`${run}-%`])
  t.ok(most <= FAULTS_PER_EVENT + 1, `no event failed more often than the simulator allows (most: ${most as number})`)
  const statuses = (await db.query('SELECT status, count(*)::int AS n FROM litellm_usage_events WHERE request_id LIKE $1 GROUP BY status', [`${run}-%`])).rows
  t.same(statuses, [{ status: 'forwarded', n: 10_000 }], '0 dead letters, nothing stuck')

  const stored = sim.state.storedEvents().filter((e) => e.transaction_id.startsWith(`${run}-`))
  const perId = new Map<string, number>()
  for (const e of stored) perId.set(e.transaction_id, (perId.get(e.transaction_id) ?? 0) + 1)
  t.equal(perId.size, 10_000, 'every event is in Lago')
  t.equal(stored.length, 10_000, 'each exactly once')
  t.same(sim.state.unbilledEvents(), [], 'and Lago bills every one')

  const applied = sim.faults.applied
  t.ok((applied.chaos_store_then_drop ?? 0) > 0 && (applied.chaos_store_then_stall ?? 0) > 0 && (applied.chaos_status ?? 0) > 0 && (applied.chaos_rate_limit ?? 0) > 0 && (applied.chaos_drop ?? 0) > 0, `the faults happened: ${JSON.stringify(applied)}`)

  // Per customer: tokens and cost ingested = what Lago holds = what aggregate_customer_usage says.
  for (const customer of customers) {
    const mine = events.filter((e) => e.customer_id === customer)
    const tokens = mine.reduce((n, e) => n + e.tokens_input + e.tokens_output, 0)
    // Expected totals with big.js, independent of the service's and the simulator's decimal code.
    const sum = (values: unknown[]): Big => values.reduce<Big>((total, v) => total.plus(new Big(String(v))), new Big(0))
    const cost = sum(mine.map((e) => e.cost_usd))
    const inLago = stored.filter((e) => e.external_subscription_id === customer)
    const lagoTokens = inLago.reduce((n, e) => n + Number((e.properties as Record<string, unknown>).total_tokens), 0)
    const lagoCost = sum(inLago.map((e) => (e.properties as Record<string, unknown>).cost_usd))
    const lagoCents = sum(inLago.map((e) => e.precise_total_amount_cents))
    const local = (await db.query('SELECT sum(total_tokens)::bigint::text AS tokens, sum(total_cost_usd)::text AS cost FROM aggregate_customer_usage($1, now() - interval \'1 day\', now() + interval \'1 day\')', [customer])).rows[0]
    t.equal(lagoTokens, tokens, `${customer}: tokens in Lago`)
    t.ok(lagoCost.eq(cost), `${customer}: cost in Lago ${lagoCost.toString()} = ${cost.toString()}`)
    t.ok(lagoCents.eq(cost.times(100)), `${customer}: precise cents add up to the cost`)
    t.equal(Number(local.tokens), tokens)
    t.ok(new Big(local.cost).eq(cost), `${customer}: aggregate_customer_usage ${local.cost}`)
  }
})
