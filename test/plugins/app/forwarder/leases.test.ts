import t from 'tap'
import type pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { build, seedEvent, sqlClient, uid, type TestContext } from '../../../helpers/app.js'
import { ingest, until } from '../../../helpers/forwarding.js'
import { markLagoErrors } from '../../../../plugins/app/lago-webhooks/repository.js'
import { claimDueEvents, markDead, markForwarded, release, scheduleRetry } from '../../../../plugins/app/forwarder/repository.js'

// The forwarder is off here (no LAGO_API_KEY): these tests drive the claim/settle functions directly.

/** Only this customer's events are due (those other tests of the file left wait an hour). */
const onlyDue = async (db: pg.Client, customer: string): Promise<void> => {
  await db.query('UPDATE litellm_usage_events SET next_attempt_at = now() + interval \'1 hour\' WHERE customer_external_id <> $1 AND status IN (\'pending\', \'failed\')', [customer])
}

/** A customer of `default` whose Lago subscription is known: a claim freezes its events' bodies. */
const subscribed = async (db: pg.Client, customer: string, subscription: string): Promise<void> => {
  await db.query('INSERT INTO customers (organization_id, external_id, subscription_external_id) VALUES (\'default\', $1, $2)', [customer, subscription])
}

/**
 * A service, a SQL client and a customer (`prefix`) with `count` events stored, the only ones due; the customer
 * subscribed first when `subscription` (its name, or how it follows from the customer's) is given.
 */
async function dueCustomer (t: TestContext, prefix: string, count: number, subscription?: string | ((customer: string) => string)): Promise<{ app: FastifyInstance, db: pg.Client, customer: string }> {
  const app = await build(t)
  const db = await sqlClient(t)
  const customer = uid(prefix)
  if (subscription !== undefined) await subscribed(db, customer, typeof subscription === 'string' ? subscription : subscription(customer))
  await ingest(app, Array.from({ length: count }, () => seedEvent({ customer_id: customer })))
  await onlyDue(db, customer)
  return { app, db, customer }
}

/** The claims of these events ran out of lease (their holder died). */
const expireClaims = async (db: pg.Client, eventIds: number[]): Promise<void> => {
  await db.query('UPDATE usage_event_claims SET lease_expires_at = now() - interval \'1 second\' WHERE event_id = ANY($1::bigint[])', [eventIds])
}

t.test('two workers claiming at once never get the same event', async (t) => {
  const app = await build(t)
  const customer = uid('split')
  await ingest(app, Array.from({ length: 300 }, () => seedEvent({ customer_id: customer })))
  const claims = await Promise.all(['a', 'b', 'c'].map(async (worker) => await claimDueEvents(app.db, { organization: 'default', worker, limit: 100, leaseMs: 60_000, metricCode: 'ai_usage' })))
  const ids = claims.flat().map((e) => e.id)
  t.equal(new Set(ids).size, ids.length, 'disjoint claims')
  t.ok(ids.length >= 200, `they share the work (${claims.map((c) => c.length).join('/')})`)
  const again = await claimDueEvents(app.db, { organization: 'default', worker: 'd', limit: 1000, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(again.filter((e) => ids.includes(e.id)).length, 0, 'leased events are not claimed again while the lease lasts')
})

t.test('a worker whose lease expired cannot settle events claimed again by another', async (t) => {
  const { app, db, customer } = await dueCustomer(t, 'stale', 4)
  const stale = await claimDueEvents(app.db, { organization: 'default', worker: 'stale', limit: 4, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(stale.length, 4)
  await expireClaims(db, stale.map((e) => e.id))
  const fresh = await claimDueEvents(app.db, { organization: 'default', worker: 'fresh', limit: 4, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.same(fresh.map((e) => e.id), stale.map((e) => e.id), 'an expired lease is claimed again')
  t.ok(fresh.every((e, i) => e.claimToken > stale[i].claimToken), 'with a new claim token')

  t.equal(await markForwarded(app.db, stale.slice(0, 1)), 0, 'stale: forwarded refused')
  t.equal(await markDead(app.db, stale.slice(1, 2).map((e) => ({ ...e, error: { kind: 'rejected' as const, message: 'x' } }))), 0, 'stale: dead refused')
  t.same(await scheduleRetry(app.db, stale.slice(2, 3).map((e) => ({ ...e, delayMs: 0 })), { kind: 'transient', message: 'x' }, 10), { retried: 0, dead: 0 }, 'stale: retry refused')
  t.equal(await release(app.db, stale.slice(3)), 0, 'stale: release refused')
  const { rows } = await db.query(`SELECT e.status, c.worker, e.attempts FROM litellm_usage_events e
    LEFT JOIN usage_event_claims c ON c.event_id = e.id WHERE e.customer_external_id = $1`, [customer])
  t.ok(rows.length === 4 && rows.every((r) => r.status === 'pending' && r.worker === 'fresh' && r.attempts === 0), 'untouched')
  t.equal(await markForwarded(app.db, fresh), 4, 'the current owner settles')
})

t.test('release gives events back without spending an attempt', async (t) => {
  const { app, db } = await dueCustomer(t, 'release', 1)
  const [event] = await claimDueEvents(app.db, { organization: 'default', worker: 'w', limit: 1, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(await release(app.db, [event], 60_000), 1)
  const { rows } = await db.query(`SELECT attempts, (SELECT count(*)::int FROM usage_event_claims WHERE event_id = e.id) AS claims,
    next_attempt_at > now() + interval '50 seconds' AS later FROM litellm_usage_events e WHERE id = $1`, [event.id])
  t.same(rows, [{ attempts: 0, claims: 0, later: true }])
})

t.test('a claim spanning months settles every event, down to the microsecond of its partition key', async (t) => {
  const { app, db, customer } = await dueCustomer(t, 'months', 6)
  // Two months back (a partition made here by hand) and this month, at the last microsecond of a millisecond:
  // JavaScript keeps the millisecond only, the range sent to PostgreSQL must still hold the event.
  const now = new Date()
  const old = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 2, 1))
  const oldEnd = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1))
  const part = `litellm_usage_events_y${old.getUTCFullYear()}m${String(old.getUTCMonth() + 1).padStart(2, '0')}`
  await db.query(`CREATE TABLE IF NOT EXISTS ${part} PARTITION OF litellm_usage_events FOR VALUES FROM ('${old.toISOString()}') TO ('${oldEnd.toISOString()}')`)
  const { rows: ids } = await db.query('SELECT id FROM litellm_usage_events WHERE customer_external_id = $1 ORDER BY id', [customer])
  await db.query('UPDATE litellm_usage_events SET received_at = $1::timestamptz + interval \'3 days 0.999999 seconds\' WHERE id = ANY($2::bigint[])', [old, ids.slice(0, 3).map((r) => r.id)])
  await db.query('UPDATE litellm_usage_events SET received_at = date_trunc(\'second\', received_at) + interval \'0.999999 seconds\' WHERE id = ANY($1::bigint[])', [ids.slice(3).map((r) => r.id)])
  const { rows: parts } = await db.query('SELECT DISTINCT tableoid::regclass::text AS part FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.equal(parts.length, 2, 'the events lie in two months')

  const claimed = await claimDueEvents(app.db, { organization: 'default', worker: 'w', limit: 10, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(claimed.length, 6)
  t.equal(await release(app.db, claimed.slice(0, 1)), 1, 'release finds its event')
  const again = await claimDueEvents(app.db, { organization: 'default', worker: 'w', limit: 10, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(again.length, 1)
  t.equal(await markForwarded(app.db, [...again, ...claimed.slice(1)]), 6, 'every event of both months is settled')
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 AND status = \'forwarded\'', [customer])
  t.equal(rows[0].n, 6)
})

t.test('one claim freezes a body for each event whose subscription is known, and none (SQL NULL, not JSON null) for the others', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const known = uid('frozen-known')
  const unknown = uid('frozen-unknown')
  await subscribed(db, known, `sub-${known}`)
  await ingest(app, [known, unknown, known, unknown].map((customer) => seedEvent({ customer_id: customer })))
  await db.query('UPDATE litellm_usage_events SET next_attempt_at = now() + interval \'1 hour\' WHERE customer_external_id <> ALL($1::text[]) AND status IN (\'pending\', \'failed\')', [[known, unknown]])

  const claimed = await claimDueEvents(app.db, { organization: 'default', worker: 'w', limit: 10, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.same(claimed.map((e) => [e.customerExternalId, e.body?.external_subscription_id ?? null, e.body === null || e.body.transaction_id === e.requestId]),
    [[known, `sub-${known}`, true], [unknown, null, true], [known, `sub-${known}`, true], [unknown, null, true]])
  const { rows } = await db.query(`SELECT e.customer_external_id AS customer, c.external_subscription_id AS subscription, c.lago_payload IS NULL AS no_body,
    c.lago_payload ->> 'transaction_id' = e.request_id AS own_body FROM usage_event_claims c JOIN litellm_usage_events e ON e.id = c.event_id
    WHERE c.event_id = ANY($1::bigint[]) ORDER BY c.event_id`, [claimed.map((e) => e.id)])
  const frozen = { subscription: `sub-${known}`, no_body: false, own_body: true }
  const none = { subscription: null, no_body: true, own_body: null }
  t.same(rows, [{ customer: known, ...frozen }, { customer: unknown, ...none }, { customer: known, ...frozen }, { customer: unknown, ...none }])
})

t.test('a Lago error webhook ends a claim in flight: its settle changes nothing, and the body it froze stays with the event', async (t) => {
  const { app, db, customer } = await dueCustomer(t, 'lago-error', 2, (c) => `sub-${c}`)
  const claimed = await claimDueEvents(app.db, { organization: 'default', worker: 'w', limit: 2, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(claimed.length, 2)
  t.ok(claimed.every((e) => e.body?.external_subscription_id === `sub-${customer}`), 'bodies frozen in the claims')
  const { rows: before } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 AND lago_payload IS NULL', [customer])
  t.equal(before[0].n, 2, 'the events themselves untouched by the claim')

  const [errored, other] = claimed
  const marked = await app.db.transaction().execute(async (trx) => await markLagoErrors(trx, 'default', [{ reason: 'invalid_filter', transactionIds: [errored.requestId] }], 'webhook-1'))
  t.equal(marked, 1)
  t.equal(await markForwarded(app.db, claimed), 1, 'only the other event is settled')
  const { rows } = await db.query(`SELECT id, status, lago_payload, external_subscription_id,
    (SELECT count(*)::int FROM usage_event_claims WHERE event_id = e.id) AS claims FROM litellm_usage_events e WHERE customer_external_id = $1 ORDER BY id`, [customer])
  t.same(rows.map((r) => [r.id, r.status, r.claims]), [[errored.id, 'lago_error', 0], [other.id, 'forwarded', 0]])
  t.same(rows[0].lago_payload, errored.body, 'the errored event keeps the body Lago was sent')
  t.same(rows[1].lago_payload, other.body, 'the forwarded one too')
  t.ok(rows.every((r) => r.external_subscription_id === `sub-${customer}`))
})

t.test('a claim whose holder died is taken over with the body it froze, even after the customer moved to another subscription', async (t) => {
  const { app, db, customer } = await dueCustomer(t, 'takeover', 1, 'sub-first')
  const [dead] = await claimDueEvents(app.db, { organization: 'default', worker: 'dead', limit: 1, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(dead.body?.external_subscription_id, 'sub-first')
  // Its holder died after the send (Lago may hold this body); the customer then moved to another subscription.
  await expireClaims(db, [dead.id])
  await db.query('UPDATE customers SET subscription_external_id = \'sub-second\' WHERE organization_id = \'default\' AND external_id = $1', [customer])

  const [taken] = await claimDueEvents(app.db, { organization: 'default', worker: 'alive', limit: 1, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(taken.id, dead.id)
  t.not(taken.claimToken, dead.claimToken, 'a new token')
  t.same(taken.body, dead.body, 'the body Lago may hold, not one for the new subscription')
  const { rows: claims } = await db.query('SELECT worker FROM usage_event_claims WHERE event_id = $1', [dead.id])
  t.same(claims, [{ worker: 'alive' }], 'one claim, the live one')
  t.equal(await markForwarded(app.db, [dead]), 0, 'the dead holder cannot settle')
  t.equal(await markForwarded(app.db, [taken]), 1)
  const { rows } = await db.query('SELECT lago_payload, external_subscription_id FROM litellm_usage_events WHERE id = $1', [dead.id])
  t.same(rows, [{ lago_payload: dead.body, external_subscription_id: 'sub-first' }])
})

t.test('a takeover carries over the body its holder froze after the takeover\'s snapshot, not one built anew', async (t) => {
  const { app, db, customer } = await dueCustomer(t, 'late-freeze', 1, 'sub-in-the-database')
  const holder = await sqlClient(t)
  // The holder's claim has no body yet (its subscription was being looked up in Lago) and its lease ran out.
  const { rows: [event] } = await db.query('SELECT id FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  await db.query(`INSERT INTO usage_event_claims (event_id, received_at, organization_id, worker, lease_expires_at)
    SELECT id, received_at, 'default', 'holder', now() - interval '1 second' FROM litellm_usage_events WHERE id = $1`, [event.id])
  // The holder freezes the body Lago's lookup gave it, and commits only once the takeover has read the claim.
  const lagoBody = { transaction_id: 'from-the-holder', external_subscription_id: 'sub-from-lago' }
  await holder.query('BEGIN')
  await holder.query('UPDATE usage_event_claims SET external_subscription_id = \'sub-from-lago\', lago_payload = $2 WHERE event_id = $1', [event.id, JSON.stringify(lagoBody)])
  const takeover = claimDueEvents(app.db, { organization: 'default', worker: 'next', limit: 1, leaseMs: 60_000, metricCode: 'ai_usage' })
  await until(async () => (await db.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = \'Lock\' AND query LIKE \'%DELETE FROM usage_event_claims%\'')).rows[0].n > 0, 'the takeover to wait for the holder\'s claim')
  await holder.query('COMMIT')
  const [taken] = await takeover
  t.equal(taken?.id, Number(event.id))
  t.same(taken?.body, lagoBody, 'the body the holder may have sent')
  t.equal(await markForwarded(app.db, [taken]), 1)
  const { rows } = await db.query('SELECT external_subscription_id, lago_payload FROM litellm_usage_events WHERE id = $1', [event.id])
  t.same(rows, [{ external_subscription_id: 'sub-from-lago', lago_payload: lagoBody }])
})

t.test('a settle whose event is out of the table (its month detached by retention) keeps the claim and its body', async (t) => {
  const { app, db, customer } = await dueCustomer(t, 'detached', 1, 'sub-first')
  // The event in a month of its own, made here by hand, three months back.
  const now = new Date()
  const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 3, 1))
  const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 2, 1))
  const part = `litellm_usage_events_y${month.getUTCFullYear()}m${String(month.getUTCMonth() + 1).padStart(2, '0')}`
  await db.query(`CREATE TABLE IF NOT EXISTS ${part} PARTITION OF litellm_usage_events FOR VALUES FROM ('${month.toISOString()}') TO ('${next.toISOString()}')`)
  await db.query('UPDATE litellm_usage_events SET received_at = $2::timestamptz + interval \'1 day\' WHERE customer_external_id = $1', [customer, month])
  const [claimed] = await claimDueEvents(app.db, { organization: 'default', worker: 'w', limit: 1, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.equal(claimed.body?.external_subscription_id, 'sub-first')

  await db.query(`ALTER TABLE litellm_usage_events DETACH PARTITION ${part}`)
  t.teardown(async () => { await db.query(`DROP TABLE IF EXISTS ${part}`) })
  t.equal(await markForwarded(app.db, [claimed]), 0, 'nothing to settle')
  const { rows: kept } = await db.query('SELECT lago_payload FROM usage_event_claims WHERE event_id = $1', [claimed.id])
  t.same(kept, [{ lago_payload: claimed.body }], 'the claim stays, with the body Lago may hold')

  // Back in the table (as retention puts unsent events back), the customer moved meanwhile: the body carries over.
  await db.query(`ALTER TABLE litellm_usage_events ATTACH PARTITION ${part} FOR VALUES FROM ('${month.toISOString()}') TO ('${next.toISOString()}')`)
  await db.query('UPDATE customers SET subscription_external_id = \'sub-second\' WHERE organization_id = \'default\' AND external_id = $1', [customer])
  await expireClaims(db, [claimed.id])
  const [again] = await claimDueEvents(app.db, { organization: 'default', worker: 'w2', limit: 1, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.same(again?.body, claimed.body)
})

t.test('a second Lago error webhook on an event still claimed moves the claim\'s body into it', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const customer = uid('second-webhook')
  await ingest(app, [seedEvent({ customer_id: customer })])
  // Marked lago_error by a first webhook while a claim of it was being inserted (the claim outlived it).
  const { rows: [event] } = await db.query('UPDATE litellm_usage_events SET status = \'lago_error\' WHERE customer_external_id = $1 RETURNING id, request_id', [customer])
  const body = { transaction_id: event.request_id, external_subscription_id: 'sub-sent' }
  await db.query(`INSERT INTO usage_event_claims (event_id, received_at, organization_id, worker, lease_expires_at, external_subscription_id, lago_payload)
    SELECT id, received_at, 'default', 'w', now() + interval '1 minute', 'sub-sent', $2 FROM litellm_usage_events WHERE id = $1`, [event.id, JSON.stringify(body)])
  const marked = await app.db.transaction().execute(async (trx) => await markLagoErrors(trx, 'default', [{ reason: 'again', transactionIds: [event.request_id] }], 'webhook-2'))
  t.equal(marked, 0, 'already lago_error: not marked again')
  const { rows } = await db.query(`SELECT status, lago_payload, external_subscription_id, (SELECT count(*)::int FROM usage_event_claims WHERE event_id = e.id) AS claims
    FROM litellm_usage_events e WHERE id = $1`, [event.id])
  t.same(rows, [{ status: 'lago_error', lago_payload: body, external_subscription_id: 'sub-sent', claims: 0 }])
})
