import t, { type Test } from 'tap'
import type pg from 'pg'
import { seedEvent, sqlClient, uid } from '../../../helpers/app.js'
import { buildForwarding, ingest, statusCounts, storedFor, until } from '../../../helpers/forwarding.js'

t.test('stored events reach Lago once, with the exact body, and are marked forwarded', async (t) => {
  const { app, sim } = await buildForwarding(t)
  const db = await sqlClient(t)
  const customer = uid('acme')
  const now = Math.floor(Date.now() / 1000)
  const events = Array.from({ length: 250 }, (_, i) => seedEvent({ customer_id: customer, timestamp: now - 10 + (i % 5) * 0.25, cost_usd: i === 0 ? 0.00375 : '0.000001' }))
  t.equal(await ingest(app, events), 250)

  await until(async () => (await statusCounts(db, customer)).forwarded === 250, 'all forwarded')
  const stored = storedFor(sim, events.map((e) => e.request_id))
  t.equal(stored.size, 250, 'every event is in Lago')
  t.ok([...stored.values()].every((n) => n === 1), 'exactly once each')
  t.same(sim.state.unbilledEvents(), [], 'Lago can bill every one (subscription, metric and plan in place)')

  const first = sim.state.storedEvents().find((e) => e.transaction_id === events[0].request_id)
  t.match(first, {
    transaction_id: events[0].request_id,
    external_subscription_id: customer,
    code: 'ai_usage',
    precise_total_amount_cents: '0.375',
    properties: { tokens_input: 100, tokens_output: 150, total_tokens: 250, model: 'gpt-4o', provider: 'openai', cost_usd: '0.00375' }
  })
  t.equal(Date.parse(first!.timestamp as string), (now - 10) * 1000, 'the call time, not the time of receipt')
  const quarter = sim.state.storedEvents().find((e) => e.transaction_id === events[1].request_id)
  t.equal(Date.parse(quarter!.timestamp as string), (now - 10 + 0.25) * 1000, 'sub-second timestamps survive')
  // As sent: Lago's contract takes the timestamp as an integer or a string, never a number with decimals.
  const sent = sim.requests.entries({ route: '/api/v1/events/batch' }).flatMap((r) => r.events ?? []).map((text) => JSON.parse(text))
  t.equal(sent.find((e) => e.transaction_id === events[1].request_id).timestamp, `${now - 10}.25`, 'sub-second: a string')
  t.equal(sent.find((e) => e.transaction_id === events[0].request_id).timestamp, `${now - 10}`, 'whole seconds: a string too')

  const rows = (await db.query('SELECT processed_at, attempts, external_subscription_id, lago_payload FROM litellm_usage_events WHERE customer_external_id = $1', [customer])).rows
  t.ok(rows.every((r) => r.processed_at instanceof Date && r.attempts === 1 && r.external_subscription_id === customer && r.lago_payload !== null))
  const batches = sim.requests.entries({ route: '/api/v1/events/batch' })
  t.ok(batches.every((b) => b.eventCount <= 100), 'at most 100 events per batch')
  const logs = (await db.query('SELECT event_type, endpoint, request_count, http_status, duration_ms FROM webhook_delivery_logs WHERE event_type = \'events.batch\'')).rows
  t.ok(logs.length >= 3, 'one delivery log row per HTTP attempt')
  t.ok(logs.every((l) => l.http_status === 200 && l.endpoint === 'POST /api/v1/events/batch' && l.request_count > 0))
  t.equal(logs.reduce((n, l) => n + l.request_count, 0), 250 + (batches.length - logs.length) * 0, 'the logs account for every event sent')

  // The seed README's delivery query works on these rows.
  const seedQuery = await db.query(`SELECT event_type, COUNT(*) as total_attempts,
      COUNT(CASE WHEN http_status BETWEEN 200 AND 299 THEN 1 END) as successful,
      COUNT(CASE WHEN http_status >= 400 THEN 1 END) as failed
    FROM webhook_delivery_logs WHERE created_at > NOW() - INTERVAL '24 hours' GROUP BY event_type`)
  t.ok(seedQuery.rows.some((r) => r.event_type === 'events.batch' && Number(r.successful) >= 3))
})

t.test('a reply lost after Lago stored the batch: the resend is byte-identical and counts as delivered', async (t) => {
  const { app, sim } = await buildForwarding(t)
  const db = await sqlClient(t)
  const customer = uid('lost-reply')
  const events = Array.from({ length: 30 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  sim.faults.storeThenDropNext(1, { route: 'POST /api/v1/events/batch' })
  sim.faults.storeThenStallNext(1, 3000, { route: 'POST /api/v1/events/batch' })
  await ingest(app, events)
  await until(async () => (await statusCounts(db, customer)).forwarded === 30, 'all forwarded', 30_000)

  const stored = storedFor(sim, events.map((e) => e.request_id))
  t.equal(stored.size, 30)
  t.ok([...stored.values()].every((n) => n === 1), 'Lago holds each event once')
  const sent = new Map<string, Set<string>>()
  for (const entry of sim.requests.entries({ route: '/api/v1/events/batch' })) {
    for (const text of entry.events ?? []) {
      const id = JSON.parse(text).transaction_id as string
      sent.set(id, (sent.get(id) ?? new Set()).add(text))
    }
  }
  const resent = [...sent.entries()].filter(([id]) => events.some((e) => e.request_id === id))
  t.same([sim.faults.applied.store_then_drop, sim.faults.applied.store_then_stall], [1, 1], 'both faults fired')
  t.ok(resent.every(([, bodies]) => bodies.size === 1), 'every send of an event has the same body')
  const dupes = sim.requests.entries({ route: '/api/v1/events/batch' }).filter((e) => e.status === 422)
  t.ok(dupes.length >= 1, 'the resend met value_already_exist')
  const dead = (await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 AND status = \'dead\'', [customer])).rows[0].n
  t.equal(dead, 0)
})

t.test('Lago rejecting one event dead-letters only that event, with Lago\'s reason', async (t) => {
  const { app, sim } = await buildForwarding(t)
  const db = await sqlClient(t)
  const customer = uid('one-bad')
  const events = Array.from({ length: 40 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  const bad = events[17].request_id as string
  sim.faults.rejectEvents({ transactionIds: [bad], errors: { properties: ['value_is_invalid'] } })
  await ingest(app, events)
  await until(async () => { const c = await statusCounts(db, customer); return (c.forwarded ?? 0) + (c.dead ?? 0) === 40 }, 'all settled')

  const { rows } = await db.query('SELECT request_id, status, last_error FROM litellm_usage_events WHERE customer_external_id = $1 AND status = \'dead\'', [customer])
  t.equal(rows.length, 1)
  t.equal(rows[0].request_id, bad)
  t.match(rows[0].last_error, { kind: 'rejected', status: 422, lago: { properties: ['value_is_invalid'] } })
  const stored = storedFor(sim, events.map((e) => e.request_id))
  t.equal(stored.size, 39, 'the other 39 are in Lago')
  t.notOk(stored.has(bad))
})

t.test('without LAGO_API_KEY nothing is forwarded and health says why', async (t) => {
  const { build } = await import('../../../helpers/app.js')
  const app = await build(t)
  const health = (await app.inject('/health')).json()
  t.match(health.forwarder, { status: 'disabled', reason: /LAGO_API_KEY/ })
  t.match(health.bootstrap, { status: 'disabled' })
})

/**
 * One worker sending batches of 10 for a customer Lago already knows (its events' bodies are frozen by the claim
 * itself, so that only recording a batch deletes claims), each send taking 1.2 s: by the end of the first, ingestion
 * has not written for a second, so batches are recorded in the background (while ingestion writes they are awaited).
 * `onClaimDelete` is the body of a trigger run before each claim is deleted (this file's database is its own); the
 * lease is `leaseMs`, the Lago timeout above the delay.
 */
async function recordingInBackground (t: Test, leaseMs: number, onClaimDelete: string): Promise<Awaited<ReturnType<typeof buildForwarding>> & { db: pg.Client, customer: string }> {
  const { app, sim } = await buildForwarding(t, { FORWARDER_CONCURRENCY: '1', FORWARDER_BATCH_SIZE: '10', FORWARDER_LEASE_MS: String(leaseMs), LAGO_TIMEOUT_MS: '5000' })
  const db = await sqlClient(t)
  const customer = uid('recording')
  t.equal(await ingest(app, [seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) })]), 1)
  await until(async () => (await statusCounts(db, customer)).forwarded === 1, 'the customer provisioned')
  await db.query(`CREATE FUNCTION test_on_claim_delete () RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ${onClaimDelete} RETURN OLD; END $$`)
  await db.query('CREATE TRIGGER test_on_claim_delete BEFORE DELETE ON usage_event_claims FOR EACH ROW EXECUTE FUNCTION test_on_claim_delete()')
  t.teardown(async () => { await db.query('DROP TRIGGER IF EXISTS test_on_claim_delete ON usage_event_claims; DROP FUNCTION IF EXISTS test_on_claim_delete()') })
  sim.faults.chaos({ seed: 1, route: 'POST /api/v1/events/batch', probabilities: { delay: 1 }, delayMs: 1200 })
  return { app, sim, db, customer }
}

t.test('a delivered batch is recorded while its worker sends the next one; nothing is sent twice meanwhile', async (t) => {
  // A lease long enough for a batch claimed ahead to be sent rather than given back (from a tenth of the lease on).
  // Recording a batch deletes its claims: while `holder` holds this advisory lock, every such delete waits for it.
  const HOLD = 7317
  const { app, sim, db, customer } = await recordingInBackground(t, 60_000, `PERFORM pg_advisory_xact_lock_shared(${HOLD});`)
  const holder = await sqlClient(t)
  await holder.query('SELECT pg_advisory_lock($1)', [HOLD])
  const events = Array.from({ length: 40 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  const since = sim.requests.total - 1 // the seq of the last request so far: entries() gives those after it
  t.equal(await ingest(app, events), 40)

  const inLago = (): number => storedFor(sim, events.map((e) => e.request_id)).size
  await until(() => inLago() >= 20, 'the second batch in Lago')
  t.same(await statusCounts(db, customer), { forwarded: 1, pending: 40 }, 'the second batch was sent while the first one\'s record waited')

  await holder.query('SELECT pg_advisory_unlock($1)', [HOLD])
  await until(async () => (await statusCounts(db, customer)).forwarded === 41, 'all forwarded')
  const stored = storedFor(sim, events.map((e) => e.request_id))
  t.equal(stored.size, 40, 'every event is in Lago')
  t.ok([...stored.values()].every((n) => n === 1), 'each once')
  t.equal(sim.requests.entries({ route: '/api/v1/events/batch', since }).length, 4, 'four sends of 10: none repeated')
  const { rows: [{ n: claims }] } = await db.query(`SELECT count(*)::int AS n FROM usage_event_claims c
    JOIN litellm_usage_events e ON e.id = c.event_id WHERE e.customer_external_id = $1`, [customer])
  t.equal(claims, 0, 'no claim left')
})

t.test('a delivered batch whose record fails is sent again once its claim expires, and Lago recognises it', async (t) => {
  // The next delete of a claim fails (a sequence is not rolled back with it): recording the next batch fails once.
  // (No claim is deleted before the events below are ingested: the sequence is there by then.)
  const { app, sim, db, customer } = await recordingInBackground(t, 2000,
    'IF nextval(\'test_claim_deletes\') = 1 THEN RAISE EXCEPTION \'test: this record fails\'; END IF;')
  await db.query('CREATE SEQUENCE test_claim_deletes')
  t.teardown(async () => { await db.query('DROP SEQUENCE IF EXISTS test_claim_deletes') })
  const events = Array.from({ length: 10 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  const since = sim.requests.total - 1
  t.equal(await ingest(app, events), 10)

  await until(async () => (await statusCounts(db, customer)).forwarded === 11, 'forwarded after the resend', 30_000)
  const sends = sim.requests.entries({ route: '/api/v1/events/batch', since })
  t.equal(sends.length, 2, 'sent, not recorded, sent again when the claim expired')
  t.equal(sends[0].status, 200)
  t.equal(sends[1].status, 422, 'Lago answered the resend value_already_exist…')
  const stored = storedFor(sim, events.map((e) => e.request_id))
  t.ok(stored.size === 10 && [...stored.values()].every((n) => n === 1), '…and holds each event once')
  t.ok((await db.query('SELECT last_value::int AS n FROM test_claim_deletes')).rows[0].n > 1, 'the failure happened, and deletes went on after it')
})
