import { gzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { seedEvent, sqlClient, uid } from '../helpers/app.js'
import { ADMIN_KEY, buildForwarding } from '../helpers/forwarding.js'
import { INGEST_TOKEN, bearer, postGeneric, postLago } from '../helpers/litellm.js'
import { simulateCall, standardLoggingPayload } from '../../scripts/litellm-simulator/index.js'
import { UsageEventWriter } from '../../plugins/app/usage-events/writer.js'
import { insertUsageEvents } from '../../plugins/app/usage-events/repository.js'
import { fromLiteLLMEvent } from '../../plugins/app/usage-events/normalize.js'
import type { LiteLLMUsageEventInput } from '../../schemas/usage-events.js'

// The operator's report (issue 9): each input here answered 500, and some failed other clients' events too.

const env = { WEBHOOK_TOKENS: INGEST_TOKEN, FORWARDER_ENABLED: 'false' }
const admin = { authorization: `Bearer ${ADMIN_KEY}` }
const NUL = '\u0000'
const LONE = '\udc00'

/** A 4xx in the service's error shape (or Lago's, on the Lago-compatible routes). */
function assertClientError (t: Test, res: LightMyRequestResponse, status: number | number[], what: string): void {
  const statuses = Array.isArray(status) ? status : [status]
  t.ok(statuses.includes(res.statusCode), `${what}: ${res.statusCode} ${res.body.slice(0, 300)}`)
  const body = res.json()
  t.equal(typeof body.code, 'string', `${what}: a machine-readable code`)
}

// One service for the whole file; a linger long enough that concurrent requests share a group commit.
let service: ReturnType<typeof buildForwarding> | undefined
const shared = async () => await (service ??= buildForwarding(t, { ...env, INGEST_LINGER_MS: '100' }))

const postEvent = async (app: FastifyInstance, event: unknown) => await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: bearer, payload: event as Record<string, unknown> })
const payload = (spec: Parameters<typeof simulateCall>[0] = {}) => standardLoggingPayload(simulateCall(spec)) as Record<string, unknown>

t.test('NUL in any text field of a seed event: 400 naming the field; nothing stored', async (t) => {
  const { app } = await shared()
  const db = await sqlClient(t)
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['customer_id', { customer_id: `a${NUL}b` }, '/customer_id'],
    ['model', { model: `gpt${NUL}` }, '/model'],
    ['request_id', { request_id: `${uid()}${NUL}` }, '/request_id'],
    ['metadata key', { metadata: { [`k${NUL}`]: 'v' } }, '/metadata'],
    ['metadata value', { metadata: { team: `t${NUL}` } }, '/metadata/team'],
    ['lone surrogate in customer_id', { customer_id: `a${LONE}` }, '/customer_id']
  ]
  for (const [what, override, field] of cases) {
    const event = seedEvent(override)
    const res = await postEvent(app, event)
    assertClientError(t, res, 400, what)
    t.match(res.json(), { code: 'invalid_text', details: [{ field }] }, `${what}: the field is named`)
    const stored = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = $1', [String(event.request_id).replace(NUL, '')])
    t.equal(stored.rows[0].n, 0, `${what}: nothing stored`)
  }
})

t.test('a poisoned event never fails the valid events sharing its group commit', async (t) => {
  // The linger (100 ms): all the requests below are written by one multi-row insert.
  const { app } = await shared()
  const db = await sqlClient(t)
  const customer = uid('neighbours')
  const valid = Array.from({ length: 30 }, () => seedEvent({ customer_id: customer }))
  const poisoned = seedEvent({ customer_id: customer, metadata: { user: `x${NUL}y` }, model: `m${NUL}` })
  const answers = await Promise.all([...valid.slice(0, 15), poisoned, ...valid.slice(15)].map(async (e) => await postEvent(app, e)))
  const poisonedAnswer = answers[15]
  assertClientError(t, poisonedAnswer, 400, 'the poisoned event')
  const others = answers.filter((_, i) => i !== 15)
  t.same(others.map((r) => r.statusCode), others.map(() => 202), 'all 30 valid events accepted')
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.equal(rows[0].n, 30, 'all 30 stored, the poisoned one not')
})

t.test('generic_api: a NUL or lone surrogate payload is reported by index, the rest of the LiteLLM batch is stored', async (t) => {
  const { app } = await shared()
  const db = await sqlClient(t)
  const team = uid('team')
  const good = Array.from({ length: 100 }, () => payload({ team }))
  const nulEndUser = { ...payload({ team }), end_user: `user${NUL}` }
  const surrogates = (['status', 'response_cost', 'end_user', 'litellm_call_id', 'model'] as const).map((field) => ({ ...payload({ team }), [field]: `v${LONE}` }))
  const batch = [...good.slice(0, 50), nulEndUser, ...surrogates, ...good.slice(50)]
  const res = await postGeneric(app, batch)
  t.equal(res.statusCode, 202, res.body.slice(0, 300))
  const body = res.json()
  t.equal(body.received, 106)
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(rows[0].n, body.accepted, 'what is acknowledged is stored')
  t.ok(body.accepted >= 100, `the 100 valid payloads are stored (${body.accepted} accepted)`)
  t.equal(body.accepted + body.rejected, 106, 'every payload is accounted for')
  for (const p of body.problems) t.ok(p.index >= 50 && p.index <= 55, `problem ${p.index} is one of the hostile payloads: ${p.message}`)
  const stored = await db.query('SELECT metadata::text AS m, model, customer_external_id AS c FROM litellm_usage_events WHERE metadata->\'identities\'->>\'team\' = $1', [team])
  t.notOk(stored.rows.some((r) => /\\u0000|\\udc00/i.test(r.m) || r.model.includes(LONE) || r.c.includes(NUL)), 'no NUL or lone surrogate stored')
})

t.test('cost_usd 1e309 (Infinity): 400, and only that item fails in a batch', async (t) => {
  const { app } = await shared()
  const db = await sqlClient(t)
  const event = seedEvent()
  const single = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { ...bearer, 'content-type': 'application/json' }, payload: JSON.stringify(event).replace('"cost_usd":0.00375', '"cost_usd":1e309') })
  assertClientError(t, single, 400, 'single event')
  t.match(single.json(), { details: [{ field: '/cost_usd' }] })
  const customer = uid('inf')
  const items = [seedEvent({ customer_id: customer }), seedEvent({ customer_id: customer }), seedEvent({ customer_id: customer })]
  const text = JSON.stringify(items).replace('"cost_usd":0.00375', '"cost_usd":1e309')
  const batch = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { ...bearer, 'content-type': 'application/json' }, payload: text })
  t.equal(batch.statusCode, 202, batch.body.slice(0, 300))
  t.match(batch.json(), { accepted: 2, rejected: 1, results: [{ index: 0, status: 'rejected' }, { status: 'accepted' }, { status: 'accepted' }] })
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.equal(rows[0].n, 2)
  const generic = await postGeneric(app, `[${JSON.stringify({ ...payload(), response_cost: 1 })}]`.replace('"response_cost":1', '"response_cost":1e309'))
  t.ok(generic.statusCode < 500, `generic_api with response_cost 1e309: ${generic.statusCode}`)
  // Found by the property suite: a cost nested 100,000 deep overflowed the stack when quoted in a note.
  const deepCost = await postGeneric(app, `[${JSON.stringify({ ...payload(), response_cost: 1 })}]`.replace('"response_cost":1', `"response_cost":${'['.repeat(100_000)}${']'.repeat(100_000)}`))
  t.equal(deepCost.statusCode, 202, `generic_api with a deeply nested response_cost: stored with cost 0 and a note (${deepCost.body.slice(0, 120)})`)
})

t.test('Lago POST /api/v1/events: a huge timestamp is a 422, never a 500', async (t) => {
  const { app } = await shared()
  const db = await sqlClient(t)
  for (const ts of ['1e20', '9007199254740993', '9223372036854775808', '1e309', '"99999999999999999999"']) {
    const text = `{"event":{"transaction_id":"${uid()}","external_subscription_id":"sub-1","code":"ai_usage","timestamp":${ts},"properties":{"model":"gpt-4o"}}}`
    const res = await postLago(app, '/api/v1/events', text)
    t.equal(res.statusCode, 422, `timestamp ${ts}: ${res.body.slice(0, 200)}`)
    t.match(res.json(), { code: 'validation_errors', error_details: { timestamp: ['invalid_format'] } })
  }
  for (const [field, value] of [['code', `ai${LONE}`], ['transaction_id', `t${NUL}`], ['transaction_id', `t${LONE}`]]) {
    const event = { transaction_id: uid(), external_subscription_id: 'sub-1', code: 'ai_usage', properties: { model: 'gpt-4o' }, [field]: value }
    const res = await postLago(app, '/api/v1/events', { event })
    t.equal(res.statusCode, 422, `${field}: ${res.body.slice(0, 200)}`)
    t.match(res.json(), { code: 'validation_errors', error_details: { [field]: ['value_is_invalid'] } })
  }
  const deep = `{"event":{"transaction_id":"${uid()}","external_subscription_id":"sub-1","code":"ai_usage","properties":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}}`
  const deepAnswer = await postLago(app, '/api/v1/events', deep)
  t.equal(deepAnswer.statusCode, 422, 'properties nested 100,000 deep (echoed back by Lago\'s contract)')
  t.match(deepAnswer.json(), { error_details: { properties: ['value_is_invalid'] } })
  // The subscription is the end user (LiteLLM's charge_by end_user_id): made well-formed and stored, so a hostile
  // OpenAI `user` field cannot make a call unbillable.
  const endUser = await postLago(app, '/api/v1/events', { event: { transaction_id: uid(), external_subscription_id: `sub${LONE}${NUL}`, code: 'ai_usage', properties: { model: `gpt${NUL}` } } })
  t.equal(endUser.statusCode, 200, endUser.body.slice(0, 200))
  const stored = await db.query('SELECT customer_external_id AS c, model FROM litellm_usage_events WHERE request_id = $1', [endUser.json().event.transaction_id])
  t.same(stored.rows, [{ c: 'sub\uFFFD\uFFFD', model: 'gpt\uFFFD' }], 'stored with U+FFFD in place of what cannot be stored')
  const batch = await postLago(app, '/api/v1/events/batch', {
    events: [
      { transaction_id: uid(), external_subscription_id: 'sub-1', code: 'ai_usage', properties: {} },
      { transaction_id: `${uid()}${NUL}`, external_subscription_id: 'sub-1', code: 'ai_usage', properties: {} }
    ]
  })
  t.equal(batch.statusCode, 422, 'Lago\'s batch contract: an invalid event is reported by index')
  t.match(batch.json(), { error_details: { 1: { transaction_id: ['value_is_invalid'] } } })
})

t.test('NUL in /api paths and bodies: 400 invalid_text', async (t) => {
  const { app } = await shared()
  const calls: Array<[string, string, unknown]> = [
    ['GET', '/api/customers/a%00b/usage', undefined],
    ['GET', '/api/customers/a%00b', undefined],
    ['GET', '/api/customer-mappings/team/a%00b', undefined],
    ['GET', '/api/customer-mappings?customer_id=a%00b', undefined],
    ['POST', '/api/customers', { external_id: `a${NUL}b`, name: 'n' }],
    ['POST', '/api/customer-mappings', { identity: 'team', value: `a${NUL}b`, customer_id: 'c' }],
    ['POST', '/api/customer-mappings', { identity: 'team', value: 'v', customer_id: `c${LONE}` }],
    ['POST', '/webhooks/retry', { request_ids: [`a${NUL}b`] }]
  ]
  for (const [method, url, body] of calls) {
    const res = await app.inject({ method: method as 'GET' | 'POST', url, headers: { ...admin, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { payload: JSON.stringify(body) } : {}) })
    assertClientError(t, res, 400, `${method} ${url} ${JSON.stringify(body) ?? ''}`)
    t.equal(res.json().code, 'invalid_text', `${method} ${url}`)
  }
})

t.test('Content-Encoding other than identity: 415 unsupported_content_encoding, nothing stored', async (t) => {
  const { app } = await shared()
  const db = await sqlClient(t)
  const event = seedEvent()
  const plain = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { ...bearer, 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: JSON.stringify(event) })
  t.equal(plain.statusCode, 415, 'a plain body claiming gzip')
  t.match(plain.json(), { statusCode: 415, code: 'unsupported_content_encoding' })
  const gzipped = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { ...bearer, 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: gzipSync(JSON.stringify(event)) })
  t.equal(gzipped.statusCode, 415, 'a real gzip body')
  const lago = await postLago(app, '/api/v1/events', { event: { transaction_id: uid(), code: 'ai_usage', external_subscription_id: 's' } }, { ...bearer, 'content-encoding': 'deflate' })
  t.equal(lago.statusCode, 415, 'the Lago-compatible routes too')
  const api = await app.inject({ method: 'POST', url: '/api/customers', headers: { ...admin, 'content-type': 'application/json', 'content-encoding': 'br' }, payload: '{}' })
  t.equal(api.statusCode, 415)
  const identity = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { ...bearer, 'content-type': 'application/json', 'content-encoding': 'identity' }, payload: JSON.stringify(event) })
  t.equal(identity.statusCode, 202, 'identity is no encoding')
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = $1', [event.request_id])
  t.equal(rows[0].n, 1, 'stored once, by the identity request')
})

t.test('POST /webhooks/retry: "retry all" must be explicit; from after to is refused', async (t) => {
  const { app } = await shared()
  const retry = async (payload: string | undefined) => await app.inject({ method: 'POST', url: '/webhooks/retry', headers: { ...admin, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(payload !== undefined ? { payload } : {}) })
  const nullBody = await retry('null')
  assertClientError(t, nullBody, 400, 'null body')
  t.equal(nullBody.json().code, 'retry_filter_required')
  const empty = await retry('{}')
  assertClientError(t, empty, 400, 'an empty object')
  t.equal(empty.json().code, 'retry_filter_required')
  const none = await retry(undefined)
  assertClientError(t, none, 400, 'no body')
  const all = await retry('{"all": true}')
  t.same([all.statusCode, all.json()], [200, { retried: 0 }], '{"all": true} retries everything')
  const reversed = await retry(JSON.stringify({ from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }))
  assertClientError(t, reversed, 400, 'from after to')
  t.equal(reversed.json().code, 'invalid_range')
})

t.test('real PostgreSQL: two rows it refuses fail alone, the 29 others of the same insert are stored', async (t) => {
  const { app } = await shared()
  const db = await sqlClient(t)
  const customer = uid('bisect')
  // No check: the events reach PostgreSQL as they are, as an event a check missed would.
  const writer = new UsageEventWriter({ write: async (events) => await insertUsageEvents(app.db, events), maxBatchRows: 100, maxConcurrentWrites: 1, lingerMs: 20 })
  const events = Array.from({ length: 31 }, (_, i) => fromLiteLLMEvent(seedEvent({ customer_id: customer }) as LiteLLMUsageEventInput, 'webhook', new Date()))
  events[11] = { ...events[11], model: `m${NUL}` }
  events[23] = { ...events[23], metadata: { v: `x${LONE}` } }
  const outcomes = (await Promise.all(events.map(async (e) => await writer.submit([e])))).map(([o]) => o.status)
  t.same(outcomes, outcomes.map((_, i) => i === 11 || i === 23 ? 'rejected' : 'accepted'))
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.equal(rows[0].n, 29)
  await writer.close()
})
