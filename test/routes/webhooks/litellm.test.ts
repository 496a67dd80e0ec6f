import t from 'tap'
import { Pool } from 'undici'
import { build, seedEvent, sqlClient, uid } from '../../helpers/app.js'

const post = (app: Awaited<ReturnType<typeof build>>, body: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json', ...headers }, payload: typeof body === 'string' ? body : JSON.stringify(body) })

t.test('the seed README event is accepted unchanged and stored exactly', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  // Verbatim from the seed README's curl example.
  const res = await app.inject({
    method: 'POST',
    url: '/webhooks/litellm',
    headers: { 'Content-Type': 'application/json' },
    payload: `{
    "event_type": "usage",
    "timestamp": 1703123456,
    "customer_id": "customer-123",
    "model": "gpt-4o",
    "provider": "openai",
    "tokens_input": 100,
    "tokens_output": 150,
    "total_tokens": 250,
    "cost_usd": 0.00375,
    "request_id": "req-abc123",
    "api_key_hash": "key_a1b2c3"
  }`
  })
  t.equal(res.statusCode, 202)
  t.match(res.json(), { status: 'accepted', request_id: 'req-abc123', id: Number })
  const { rows } = await db.query(`SELECT customer_external_id, model, provider, event_type, tokens_input, tokens_output, total_tokens,
    cost_usd::text, api_key_hash, "timestamp", source, status, processed_at, attempts FROM litellm_usage_events WHERE request_id = 'req-abc123'`)
  t.same(rows, [{
    customer_external_id: 'customer-123',
    model: 'gpt-4o',
    provider: 'openai',
    event_type: 'usage',
    tokens_input: '100',
    tokens_output: '150',
    total_tokens: '250',
    cost_usd: '0.00375',
    api_key_hash: 'key_a1b2c3',
    timestamp: new Date('2023-12-21T01:50:56.000Z'),
    source: 'webhook',
    status: 'pending',
    processed_at: null,
    attempts: 0
  }])
})

t.test('timestamps: Unix seconds, ISO-8601, absent; milliseconds are refused', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const iso = seedEvent({ timestamp: '2025-11-24T10:00:01.987654+02:00' })
  t.equal((await post(app, iso)).statusCode, 202)
  const fractional = seedEvent({ timestamp: 1763978400.123 })
  t.equal((await post(app, fractional)).statusCode, 202)
  const before = Date.now()
  const none = seedEvent({ timestamp: undefined })
  t.equal((await post(app, none)).statusCode, 202)

  const stored = async (id: unknown) => (await db.query('SELECT "timestamp" FROM litellm_usage_events WHERE request_id = $1', [id])).rows[0].timestamp as Date
  t.equal((await stored(iso.request_id)).toISOString(), '2025-11-24T08:00:01.987Z')
  t.equal((await stored(fractional.request_id)).toISOString(), '2025-11-24T10:00:00.123Z')
  t.ok((await stored(none.request_id)).getTime() >= before - 1000, 'absent timestamp means the time of receipt')

  const ms = await post(app, seedEvent({ timestamp: 1703123456000 }))
  t.equal(ms.statusCode, 400)
  t.equal(ms.json().code, 'validation_error')
  t.match(ms.json().message, /timestamp/)
  const noZone = await post(app, seedEvent({ timestamp: 'yesterday' }))
  t.equal(noZone.statusCode, 400)
})

t.test('total_tokens is computed when absent; provider defaults to unknown', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const event = seedEvent({ total_tokens: undefined, provider: undefined, tokens_input: 7, tokens_output: 5 })
  t.equal((await post(app, event)).statusCode, 202)
  const { rows } = await db.query('SELECT total_tokens, provider FROM litellm_usage_events WHERE request_id = $1', [event.request_id])
  t.same(rows, [{ total_tokens: '12', provider: 'unknown' }])
})

t.test('bad counts and costs are rejected with the field named, never coerced', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const customer = uid('rejected-customer')
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['negative input tokens', { tokens_input: -1 }, '/tokens_input'],
    ['fractional output tokens', { tokens_output: 1.5 }, '/tokens_output'],
    ['numeric string tokens', { tokens_input: '12' }, '/tokens_input'],
    ['text total', { total_tokens: 'many' }, '/total_tokens'],
    ['negative cost', { cost_usd: -0.01 }, '/cost_usd'],
    ['non-numeric cost', { cost_usd: 'free' }, '/cost_usd'],
    ['null cost', { cost_usd: null }, '/cost_usd'],
    ['missing customer', { customer_id: undefined }, '/customer_id'],
    ['missing request id', { request_id: undefined }, '/request_id'],
    ['empty model', { model: '' }, '/model']
  ]
  for (const [name, overrides, field] of cases) {
    const res = await post(app, seedEvent({ customer_id: customer, ...overrides }))
    t.equal(res.statusCode, 400, name)
    const body = res.json()
    t.equal(body.code, 'validation_error', `${name}: code`)
    t.equal(body.statusCode, 400)
    t.equal(body.error, 'Bad Request')
    t.ok(body.details.some((d: { field: string }) => d.field === field), `${name}: details name ${field}`)
    t.match(body.message, field, `${name}: message names ${field}`)
  }
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.equal(rows[0].n, 0, 'nothing stored')
})

t.test('unknown fields are tolerated and not stored; prompt text in metadata is dropped', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const event = seedEvent({
    some_future_field: { nested: true },
    messages: [{ role: 'user', content: 'secret prompt' }],
    metadata: { team: 'acme', tags: ['prod'], prompt: 'secret prompt', extra: { response: 'secret answer', region: 'eu' } }
  })
  t.equal((await post(app, event)).statusCode, 202)
  const { rows } = await db.query('SELECT metadata, row_to_json(e)::text AS everything FROM litellm_usage_events e WHERE request_id = $1', [event.request_id])
  t.same(rows[0].metadata, { team: 'acme', tags: ['prod'], extra: { region: 'eu' } })
  t.notMatch(rows[0].everything, /secret/, 'no prompt or response text anywhere in the row')
})

t.test('costs are exact decimals, as numbers or strings', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const cases: Array<[unknown, string]> = [
    [0.00375, '0.00375'],
    [1e-7, '0.0000001'],
    [0.1, '0.1'],
    [123456.789, '123456.789'],
    ['0.000000123456789012345678', '0.000000123456789012345678'],
    ['0.003750', '0.00375'],
    [0, '0']
  ]
  for (const [cost, expected] of cases) {
    const event = seedEvent({ cost_usd: cost })
    t.equal((await post(app, event)).statusCode, 202, `accepts ${String(cost)}`)
    const { rows } = await db.query('SELECT cost_usd::text AS cost FROM litellm_usage_events WHERE request_id = $1', [event.request_id])
    t.equal(rows[0].cost, expected, `${String(cost)} stored as ${expected}`)
  }
})

t.test('the same request_id: a resend is a duplicate, different billing content is a 409', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const event = seedEvent()
  const first = await post(app, event)
  t.equal(first.statusCode, 202)
  const again = await post(app, { ...event, some_new_field: 1, api_key_hash: 'other-key' })
  t.equal(again.statusCode, 200)
  t.same(again.json(), { status: 'duplicate', request_id: event.request_id, id: first.json().id })
  const sameCostOtherSpelling = await post(app, { ...event, cost_usd: '0.003750' })
  t.equal(sameCostOtherSpelling.statusCode, 200, 'the same cost written differently is the same content')

  const changed = await post(app, { ...event, tokens_output: 151 })
  t.equal(changed.statusCode, 409)
  t.equal(changed.json().code, 'request_id_conflict')
  t.match(changed.json().message, String(event.request_id))
  const { rows } = await db.query('SELECT tokens_output::int, count(*) OVER ()::int AS n FROM litellm_usage_events WHERE request_id = $1', [event.request_id])
  t.same(rows, [{ tokens_output: 150, n: 1 }], 'the stored event is untouched')
})

t.test('the same event posted 50 times concurrently is stored once', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const event = seedEvent()
  const replies = await Promise.all(Array.from({ length: 50 }, () => post(app, event)))
  const statuses = replies.map((r) => r.statusCode).sort()
  t.same(statuses, [200, ...Array(48).fill(200), 202].sort(), 'one 202, 49 duplicates (200)')
  t.equal(new Set(replies.map((r) => r.json().id)).size, 1, 'all point at the same stored event')
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = $1', [event.request_id])
  t.equal(rows[0].n, 1)
})

t.test('1,000 concurrent posts of distinct events over real sockets store exactly 1,000 rows', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const client = new Pool(`http://127.0.0.1:${port}`, { connections: 100 })
  t.teardown(() => client.close())
  const customer = uid('bulk-customer')
  const replies = await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
    const res = await client.request({
      method: 'POST',
      path: '/webhooks/litellm',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(seedEvent({ customer_id: customer, request_id: `${customer}-${i}` }))
    })
    await res.body.dump()
    return res.statusCode
  }))
  t.same([...new Set(replies)], [202])
  const { rows } = await db.query('SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.same(rows[0], { n: 1000, ids: 1000 })
})

t.test('transport errors: malformed JSON, wrong content type, too large, empty', async (t) => {
  const app = await build(t, { BODY_LIMIT_BYTES: '2048' })
  const malformed = await post(app, '{"customer_id": "c",')
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.json().code, 'invalid_json')

  const text = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'text/plain' }, payload: 'hello' })
  t.equal(text.statusCode, 415)
  t.equal(text.json().code, 'unsupported_media_type')
  const form = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=b' })
  t.equal(form.statusCode, 415)

  const large = await post(app, seedEvent({ padding: 'x'.repeat(4096) }))
  t.equal(large.statusCode, 413)
  t.equal(large.json().code, 'payload_too_large')

  const empty = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: '' })
  t.equal(empty.statusCode, 400)
  t.equal(empty.json().code, 'empty_body')

  const array = await post(app, [seedEvent()])
  t.equal(array.statusCode, 400, 'an array is not one event')
  t.equal(array.json().code, 'validation_error')

  const proto = await post(app, '{"__proto__": {"admin": true}, "customer_id": "c"}')
  t.equal(proto.statusCode, 400, 'prototype poisoning is refused')

  for (const res of [malformed, text, large, empty, array]) {
    t.match(res.json(), { statusCode: Number, error: String, code: String, message: String }, 'one error shape')
  }
  const missing = await app.inject({ method: 'GET', url: '/nowhere' })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'not_found')
})
