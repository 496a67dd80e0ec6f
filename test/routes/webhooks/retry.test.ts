import t from 'tap'
import { seedEvent, sqlClient, uid } from '../../helpers/app.js'
import { ADMIN_KEY, buildForwarding, ingest, storedFor, until } from '../../helpers/forwarding.js'

const auth = { authorization: `Bearer ${ADMIN_KEY}` }

t.test('POST /webhooks/retry brings dead events back; delivered ones are never re-billed', async (t) => {
  const { app, sim } = await buildForwarding(t)
  const db = await sqlClient(t)
  const customer = uid('retry')
  const events = Array.from({ length: 10 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  const bad = [events[2].request_id, events[5].request_id] as string[]
  const rejection = sim.faults.rejectEvents({ transactionIds: bad })
  await ingest(app, events)
  const settled = async (status: string) => (await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 AND status = $2', [customer, status])).rows[0].n as number
  await until(async () => await settled('dead') === 2 && await settled('forwarded') === 8, 'two dead, eight forwarded')

  t.equal((await app.inject({ method: 'POST', url: '/webhooks/retry' })).statusCode, 401, 'authenticated')
  const bogus = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { statuses: ['forwarded'] } })
  t.equal(bogus.statusCode, 400, 'delivered events cannot be asked for')

  sim.faults.remove(rejection) // Lago would accept them now
  const other = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { customer_id: uid('nobody') } })
  t.same(other.json(), { retried: 0 }, 'filters apply')
  const res = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { customer_id: customer } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { retried: 2 }, 'only the dead ones; the 8 delivered are untouched')
  await until(async () => await settled('forwarded') === 10, 'all ten delivered')
  const stored = storedFor(sim, events.map((e) => e.request_id))
  t.equal(stored.size, 10)
  t.ok([...stored.values()].every((n) => n === 1), 'nothing billed twice')
})

t.test('retry filters: request ids, time range, statuses; {"all": true} means everything failed or dead', async (t) => {
  const { app } = await buildForwarding(t, { FORWARDER_ENABLED: 'false' })
  const db = await sqlClient(t)
  const customer = uid('filters')
  const now = Math.floor(Date.now() / 1000)
  const events = Array.from({ length: 6 }, (_, i) => seedEvent({ customer_id: customer, timestamp: now - i * 3600 }))
  await ingest(app, events)
  await db.query('UPDATE litellm_usage_events SET status = \'dead\', attempts = 10, last_error = \'{"kind":"exhausted"}\' WHERE customer_external_id = $1', [customer])
  await db.query('UPDATE litellm_usage_events SET status = \'failed\' WHERE request_id = $1', [events[5].request_id])

  const byIds = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { request_ids: [events[0].request_id, 'unknown'] } })
  t.same(byIds.json(), { retried: 1 })
  const byTime = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { customer_id: customer, from: new Date((now - 2.5 * 3600) * 1000).toISOString(), to: new Date((now - 0.5 * 3600) * 1000).toISOString() } })
  t.same(byTime.json(), { retried: 2 }, 'events 1 and 2 happened in the window')
  const onlyFailed = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { customer_id: customer, statuses: ['failed'] } })
  t.same(onlyFailed.json(), { retried: 1 })
  const { rows } = await db.query('SELECT status, attempts, last_error FROM litellm_usage_events WHERE request_id = $1', [events[0].request_id])
  t.same(rows, [{ status: 'pending', attempts: 0, last_error: null }])
  t.equal((await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth })).statusCode, 400, '"retry all" is never implied')
  const everything = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { all: true } })
  t.equal(everything.statusCode, 200)
  t.same(everything.json(), { retried: 2 })
  const invalid = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: auth, payload: { from: 'yesterday' } })
  t.equal(invalid.statusCode, 400)
  t.equal(invalid.json().code, 'validation_error')
})
