import { randomUUID } from 'node:crypto'
import t from 'tap'
import { build, sqlClient, uid } from '../../helpers/app.js'
import { INGEST_TOKEN, bearer, postGeneric, postLago, storedEvents } from '../../helpers/litellm.js'
import { simulateCall, standardLoggingPayload } from '../../../scripts/litellm-simulator/index.js'

const env = { WEBHOOK_TOKENS: INGEST_TOKEN }

/** The body LiteLLM's lago callback sends (current code). */
const lagoCallback = (customer: string, properties: Record<string, unknown> = {}) => ({
  event: {
    transaction_id: randomUUID(),
    external_subscription_id: customer,
    code: 'litellm_usage',
    properties: { model: 'gpt-4o-mini', response_cost: 0.000183, prompt_tokens: 412, completion_tokens: 202, total_tokens: 614, ...properties }
  }
})

const cloudEvent = (subject: unknown, id = `chatcmpl-${randomUUID()}`, data: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  type: 'litellm_tokens',
  id,
  time: '2026-11-24T10:00:01.987654+00:00',
  subject,
  source: 'litellm-proxy',
  data: { model: 'gpt-4o-mini', cost: 0.000183, prompt_tokens: 412, completion_tokens: 202, total_tokens: 614, ...data }
})

t.test('LiteLLM\'s lago callback: Lago\'s answer, the event stored as a usage event', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const customer = uid('team')
  const body = lagoCallback(customer)
  const res = await postLago(app, '/api/v1/events', body)
  t.equal(res.statusCode, 200)
  const { event } = res.json()
  t.match(event, { transaction_id: body.event.transaction_id, lago_customer_id: null, lago_subscription_id: null, code: 'litellm_usage', external_subscription_id: customer, precise_total_amount_cents: null, properties: body.event.properties })
  t.match(event.lago_id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.match(event.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  const [stored] = await storedEvents(db, 'request_id = $1', [body.event.transaction_id])
  t.match(stored, { source: 'lago_callback', status: 'pending', customer_external_id: customer, cost_usd: '0.000183', total_tokens: 614, metadata: { lago_code: 'litellm_usage', subject: customer, customer_from: 'subject' } })

  // LiteLLM re-sends a POST once when the connection drops: the same body again.
  const resent = await postLago(app, '/api/v1/events', body)
  t.equal(resent.statusCode, 200)
  t.equal(resent.json().event.lago_id, event.lago_id, 'same lago_id for the same event')
  const changed = await postLago(app, '/api/v1/events', { event: { ...body.event, properties: { ...body.event.properties, total_tokens: 1 } } })
  t.equal(changed.statusCode, 422)
  t.same(changed.json(), { status: 422, error: 'Unprocessable Entity', code: 'validation_errors', error_details: { transaction_id: ['value_already_exist'] } })
  t.equal((await storedEvents(db, 'request_id = $1', [body.event.transaction_id])).length, 1)
})

t.test('every spelling LiteLLM has used: external_customer_id, input/output_tokens, null cost, no tokens', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const customer = uid('cust')
  const old = { event: { transaction_id: randomUUID(), external_customer_id: customer, code: 'litellm_usage', properties: { model: 'llama3.2', response_cost: null, input_tokens: 100, output_tokens: 50 } } }
  const image = lagoCallback(customer, { model: 'dall-e-3', response_cost: 0.04, prompt_tokens: undefined, completion_tokens: undefined, total_tokens: undefined })
  for (const body of [old, image]) t.equal((await postLago(app, '/api/v1/events', body)).statusCode, 200)
  const rows = await storedEvents(db, 'customer_external_id = $1', [customer])
  t.match(rows, [
    { model: 'llama3.2', tokens_input: 100, tokens_output: 50, total_tokens: 150, cost_usd: '0', metadata: { notes: [/external_customer_id/, /response_cost was null/] } },
    { model: 'dall-e-3', total_tokens: 0, cost_usd: '0.04' }
  ])
  const nan = await postLago(app, '/api/v1/events', JSON.stringify(lagoCallback(customer)).replace('0.000183', 'NaN'))
  t.equal(nan.statusCode, 200, 'a NaN cost does not fail the request')
  const noCustomer = await postLago(app, '/api/v1/events', { event: { transaction_id: randomUUID(), external_customer_id: null, code: 'litellm_usage', properties: { model: 'm' } } })
  t.equal(noCustomer.statusCode, 200, 'Lago accepts it; it waits for a customer here')
  t.match((await storedEvents(db, 'request_id = $1', [noCustomer.json().event.transaction_id]))[0], { status: 'unmapped' })
})

t.test('Lago\'s errors, in Lago\'s shapes', async (t) => {
  const app = await build(t, env)
  const unauthorized = await postLago(app, '/api/v1/events', lagoCallback('c'), { authorization: 'Bearer wrong' })
  t.equal(unauthorized.statusCode, 401)
  t.same(unauthorized.json(), { status: 401, error: 'Unauthorized' })
  t.same((await postLago(app, '/api/v1/events', lagoCallback('c'), {})).json(), { status: 401, error: 'Unauthorized' })
  const missing = await postLago(app, '/api/v1/events', { customer: {} })
  t.same([missing.statusCode, missing.json()], [400, { status: 400, error: 'BadRequest: param is missing or the value is empty: event' }])
  const invalid = await postLago(app, '/api/v1/events', { event: { external_subscription_id: 'c', timestamp: '2026-11-24T10:00:00Z' } })
  t.same([invalid.statusCode, invalid.json()], [422, { status: 422, error: 'Unprocessable Entity', code: 'validation_errors', error_details: { transaction_id: ['value_is_mandatory'], code: ['value_is_mandatory'], timestamp: ['invalid_format'] } }])
  const notJson = await postLago(app, '/api/v1/events', '{"event": ')
  t.match([notJson.statusCode, notJson.json()], [400, { status: 400, error: /^BadRequest: / }])
})

t.test('the batch endpoint: Lago\'s answer, validated as a whole, resends accepted', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const customer = uid('batch')
  const events = Array.from({ length: 3 }, () => lagoCallback(customer).event)
  const res = await postLago(app, '/api/v1/events/batch', { events })
  t.equal(res.statusCode, 200)
  t.same(res.json().events.map((e: { transaction_id: string }) => e.transaction_id), events.map((e) => e.transaction_id), 'in input order')
  t.equal((await postLago(app, '/api/v1/events/batch', { events })).statusCode, 200, 'a resent batch')

  const other = uid('batch')
  const bad = [lagoCallback(other).event, { ...lagoCallback(other).event, code: '' }, lagoCallback(other).event]
  bad[2].transaction_id = bad[0].transaction_id
  const refused = await postLago(app, '/api/v1/events/batch', { events: bad })
  t.same([refused.statusCode, refused.json().error_details], [422, { 1: { code: ['value_is_mandatory'] }, 2: { transaction_id: ['value_already_exist'] } }])
  t.equal((await storedEvents(db, 'customer_external_id = $1', [other])).length, 0, 'nothing of a refused batch is stored')
  t.same((await postLago(app, '/api/v1/events/batch', { events: [] })).json().error_details, { events: ['no_events'] })
  t.same((await postLago(app, '/api/v1/events/batch', { events: Array.from({ length: 101 }, () => lagoCallback(other).event) })).json().error_details, { events: ['too_many_events'] })
  t.equal((await postLago(app, '/api/v1/events/batch', [])).statusCode, 400)
  t.equal((await storedEvents(db, 'customer_external_id = $1', [customer])).length, 3)
})

t.test('a double-fired Lago callback cannot be told from two calls, unless the content guard is on', async (t) => {
  const off = await build(t, env)
  const db = await sqlClient(t)
  const customer = uid('double')
  const first = lagoCallback(customer)
  // LiteLLM's callback fired twice for one call: a fresh transaction_id each time, same content.
  const second = { event: { ...first.event, transaction_id: randomUUID() } }
  for (const body of [first, second]) await postLago(off, '/api/v1/events', body)
  t.equal((await storedEvents(db, 'customer_external_id = $1', [customer])).length, 2, 'off (the default): both are stored')

  const guarded = await build(t, { ...env, LAGO_EVENTS_DEDUPE_WINDOW_MS: '2000' })
  const other = uid('double')
  const a = lagoCallback(other)
  const b = { event: { ...a.event, transaction_id: randomUUID() } }
  const c = lagoCallback(other, { total_tokens: 615 })
  const results = await Promise.all([a, b, c].map(async (body) => await postLago(guarded, '/api/v1/events', body)))
  t.same(results.map((r) => r.statusCode), [200, 200, 200])
  const stored = await storedEvents(db, 'customer_external_id = $1', [other])
  t.equal(stored.length, 2, 'on: the identical one within the window is one call, a different one is not')
})

t.test('OpenMeter CloudEvents on the same URL: stored once per (source, id), and once per call across formats', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const customer = uid('om')
  const headers = { ...bearer, 'content-type': 'application/cloudevents+json' }
  const event = cloudEvent(customer)
  const res = await app.inject({ method: 'POST', url: '/api/v1/events', headers, payload: JSON.stringify(event) })
  t.equal(res.statusCode, 204)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/events', headers, payload: JSON.stringify(event) })).statusCode, 204, 'a resend')
  const [stored] = await storedEvents(db, 'customer_external_id = $1', [customer])
  t.match(stored, { request_id: `litellm-proxy:${event.id}`, source: 'openmeter', litellm_id: event.id, cost_usd: '0.000183', total_tokens: 614 })
  t.equal(stored.timestamp.toISOString(), '2026-11-24T10:00:01.988Z')

  const old = cloudEvent([customer, null], undefined, { cost: null, prompt_tokens: undefined, completion_tokens: undefined, total_tokens: undefined })
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/events', headers, payload: JSON.stringify(old) })).statusCode, 204, 'the old tuple subject and a null cost')
  const batch = [cloudEvent(customer), { ...cloudEvent(customer), source: undefined }]
  const partial = await app.inject({ method: 'POST', url: '/api/v1/events', headers: { ...bearer, 'content-type': 'application/cloudevents-batch+json' }, payload: JSON.stringify(batch) })
  t.match([partial.statusCode, partial.json()], [400, { code: 'invalid_cloudevent', error_details: { 1: /source missing/ } }])
  t.equal((await storedEvents(db, 'customer_external_id = $1', [customer])).length, 3, 'the valid event of the batch is kept')

  // The same call pushed by generic_api too (both callbacks on): billed once.
  const sim = simulateCall({ endUser: uid('both') })
  t.equal((await postGeneric(app, [standardLoggingPayload(sim)])).json().accepted, 1)
  await app.inject({ method: 'POST', url: '/api/v1/events', headers, payload: JSON.stringify(cloudEvent(sim.spec.endUser, sim.responseId)) })
  t.equal((await storedEvents(db, 'customer_external_id = $1', [sim.spec.endUser])).length, 1, 'the OpenMeter event of a call pushed by generic_api is a duplicate')
})
