import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import { build, seedEvent, sqlClient, uid } from '../../helpers/app.js'

type App = Awaited<ReturnType<typeof build>>
const postBatch = (app: App, body: unknown) =>
  app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })

t.test('a batch of 100 with 3 bad items stores the 97 and says why the 3 failed', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const customer = uid('batch-customer')
  const events: Array<Record<string, unknown>> = Array.from({ length: 100 }, (_, i) => seedEvent({ customer_id: customer, request_id: `${customer}-${i}` }))
  events[7] = { ...events[7], tokens_input: -5 }
  events[42] = { ...events[42], cost_usd: 'lots' }
  delete events[99].request_id

  const res = await postBatch(app, events)
  t.equal(res.statusCode, 202)
  const body = res.json()
  t.match(body, { accepted: 97, duplicate: 0, conflict: 0, rejected: 3 })
  t.equal(body.results.length, 100, 'one result per item, in order')
  t.same(body.results.map((r: { index: number }) => r.index), [...Array(100).keys()])
  t.match(body.results[7], { index: 7, status: 'rejected', request_id: `${customer}-7`, errors: [{ field: '/tokens_input' }] })
  t.match(body.results[7].message, /tokens_input/)
  t.match(body.results[42], { status: 'rejected', errors: [{ field: '/cost_usd' }] })
  t.match(body.results[99], { status: 'rejected', errors: [{ field: '/request_id', message: 'is required' }] })
  t.match(body.results[0], { index: 0, status: 'accepted', request_id: `${customer}-0`, id: Number })

  const { rows } = await db.query('SELECT count(*)::int AS n, min(source) AS source FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.same(rows[0], { n: 97, source: 'webhook_batch' })
})

t.test('{ "events": [...] } is accepted too; a resent batch is all duplicates (200)', async (t) => {
  const app = await build(t)
  const events = Array.from({ length: 5 }, () => seedEvent())
  const first = await postBatch(app, { events })
  t.equal(first.statusCode, 202)
  t.equal(first.json().accepted, 5)
  const again = await postBatch(app, { events })
  t.equal(again.statusCode, 200)
  t.match(again.json(), { accepted: 0, duplicate: 5 })
  t.same(again.json().results.map((r: { id: number }) => r.id), first.json().results.map((r: { id: number }) => r.id), 'duplicates point at the stored events')
})

t.test('repeats inside one batch: same content is a duplicate, different content a conflict', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const a = seedEvent()
  const stored = seedEvent()
  t.equal((await postBatch(app, [stored])).statusCode, 202)
  const res = await postBatch(app, [a, { ...a }, { ...a, tokens_input: 1 }, { ...stored, model: 'other' }, { ...stored }])
  t.equal(res.statusCode, 202)
  t.same(res.json().results.map((r: { status: string }) => r.status), ['accepted', 'duplicate', 'conflict', 'conflict', 'duplicate'])
  t.match(res.json(), { accepted: 1, duplicate: 2, conflict: 2, rejected: 0 })
  const { rows } = await db.query('SELECT request_id, tokens_input::int, model FROM litellm_usage_events WHERE request_id = ANY($1) ORDER BY id', [[a.request_id, stored.request_id]])
  t.same(rows, [{ request_id: stored.request_id, tokens_input: 100, model: 'gpt-4o' }, { request_id: a.request_id, tokens_input: 100, model: 'gpt-4o' }])
})

t.test('nothing storable is a 400 that still lists every item', async (t) => {
  const app = await build(t)
  const res = await postBatch(app, [{ nope: true }, 'text', null, seedEvent({ model: 7 })])
  t.equal(res.statusCode, 400)
  const body = res.json()
  t.match(body, { statusCode: 400, error: 'Bad Request', code: 'no_valid_events', rejected: 4, accepted: 0 })
  t.match(body.message, /4 rejected/)
  t.equal(body.results.length, 4)
  t.match(body.results[3], { status: 'rejected', errors: [{ field: '/model' }] })

  const empty = await postBatch(app, [])
  t.equal(empty.statusCode, 400)
  t.equal(empty.json().code, 'empty_batch')
  const emptyObject = await postBatch(app, { events: [] })
  t.equal(emptyObject.json().code, 'empty_batch')
  const wrongShape = await postBatch(app, { event: seedEvent() })
  t.equal(wrongShape.statusCode, 400)
  t.equal(wrongShape.json().code, 'validation_error')
})

t.test('the batch size limit is configurable and named in the error', async (t) => {
  const app = await build(t, { WEBHOOK_BATCH_MAX_EVENTS: '5' })
  const db = await sqlClient(t)
  const customer = uid('limit-customer')
  const events = Array.from({ length: 6 }, () => seedEvent({ customer_id: customer }))
  const res = await postBatch(app, events)
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'validation_error')
  t.match(res.json().message, /5/)
  t.equal((await postBatch(app, events.slice(0, 5))).statusCode, 202)
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.equal(rows[0].n, 5)
})

t.test('1,000 events in one batch (the default limit) are stored with one reply', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const customer = uid('big-batch')
  const events = Array.from({ length: 1000 }, (_, i) => seedEvent({ customer_id: customer, request_id: `${customer}-${i}`, cost_usd: '0.000001' }))
  const res = await postBatch(app, events)
  t.equal(res.statusCode, 202)
  t.equal(res.json().accepted, 1000)
  const { rows } = await db.query('SELECT count(*)::int AS n, sum(cost_usd)::text AS cost FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.same(rows[0], { n: 1000, cost: '0.001000' })
})

t.test('each event of a multi-row write keeps its own metadata (one jsonb array parameter, unnested in order)', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const customer = uid('batch-metadata')
  // Different shapes and sizes, quotes and backslashes included (what array-literal escaping was about).
  const metadataOf = (i: number): Record<string, unknown> => i % 3 === 0
    ? {}
    : { n: i, team: `team "${i}"`, path: `C:\\dir\\${i}`, tags: Array.from({ length: i % 5 }, (_, k) => `t${k}`), nested: { even: i % 2 === 0 } }
  const events = Array.from({ length: 300 }, (_, i) => seedEvent({ customer_id: customer, request_id: `${customer}-${i}`, metadata: metadataOf(i) }))
  const res = await postBatch(app, events)
  t.equal(res.statusCode, 202)
  t.match(res.json(), { accepted: 300 })
  const { rows } = await db.query<{ request_id: string, metadata: Record<string, unknown> }>('SELECT request_id, metadata FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.equal(rows.length, 300)
  const wrong = rows.filter((r) => !isDeepStrictEqual(r.metadata, metadataOf(Number(r.request_id.slice(customer.length + 1)))))
  t.same(wrong.map((r) => r.request_id), [], 'every event stored with the metadata it was sent with')
})
