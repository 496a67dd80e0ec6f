import { randomUUID } from 'node:crypto'
import t from 'tap'
import { sqlClient, uid } from '../../../helpers/app.js'
import { buildForwarding, storedFor, until } from '../../../helpers/forwarding.js'
import { INGEST_TOKEN, bearer, postGeneric, postLago, storedEvents } from '../../../helpers/litellm.js'
import { readSpendLog } from '../../../../plugins/app/litellm/spend-log.js'
import { simulateCall, spendLogRow, standardLoggingPayload } from '../../../../scripts/litellm-simulator/index.js'

const recent = (): number => (Date.now() - 30_000) * 1000

t.test('every LiteLLM format reaches Lago once per billable call, with exact costs', async (t) => {
  const { app, sim: lago } = await buildForwarding(t, { WEBHOOK_TOKENS: INGEST_TOKEN })
  const db = await sqlClient(t)
  const customer = uid('acme')
  const spec = { endUser: customer, startMicros: recent() }

  const original = simulateCall(spec)
  const generic = [
    standardLoggingPayload(original),
    null,
    standardLoggingPayload(simulateCall({ ...spec, cacheHitOf: original })),
    standardLoggingPayload(simulateCall({ ...spec, failure: { errorClass: 'APIConnectionError', errorCode: '500' } })),
    standardLoggingPayload(simulateCall({ ...spec, cost: null }))
  ]
  t.match((await postGeneric(app, generic)).json(), { accepted: 4, skipped: 1, not_billable: 1 })
  const ndjson = [simulateCall(spec), simulateCall(spec)].map((c) => JSON.stringify(standardLoggingPayload(c))).join('\n')
  t.match((await postGeneric(app, ndjson)).json(), { accepted: 2 })
  t.match((await postGeneric(app, [generic[0]])).json(), { duplicate: 1 }, 'a double-fired callback')

  const lagoEvent = (properties: Record<string, unknown>, subjectKey = 'external_subscription_id') =>
    ({ transaction_id: randomUUID(), [subjectKey]: customer, code: 'litellm_usage', properties: { model: 'gpt-4o', ...properties } })
  t.equal((await postLago(app, '/api/v1/events', { event: lagoEvent({ response_cost: 0.00375, prompt_tokens: 100, completion_tokens: 150, total_tokens: 250 }) })).statusCode, 200)
  t.equal((await postLago(app, '/api/v1/events', { event: lagoEvent({ response_cost: null, input_tokens: 7, output_tokens: 3 }, 'external_customer_id') })).statusCode, 200)
  t.equal((await postLago(app, '/api/v1/events/batch', { events: [lagoEvent({ response_cost: 0.1 }), lagoEvent({ response_cost: 0.2 })] })).statusCode, 200)

  const openmeter = (id: string) => JSON.stringify({ specversion: '1.0', type: 'litellm_tokens', id, time: new Date().toISOString(), subject: customer, source: 'litellm-proxy', data: { model: 'gpt-4o-mini', cost: 0.000183, prompt_tokens: 412, completion_tokens: 202, total_tokens: 614 } })
  const ce = { ...bearer, 'content-type': 'application/cloudevents+json' }
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/events', headers: ce, payload: openmeter(`chatcmpl-${randomUUID()}`) })).statusCode, 204)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/events', headers: ce, payload: openmeter(original.responseId) })).statusCode, 204, 'the same call as a generic_api payload')

  const stored = await storedEvents(db, 'customer_external_id = $1', [customer])
  t.same(stored.map((e) => e.source).sort(), ['generic_api', 'generic_api', 'generic_api', 'generic_api', 'generic_api', 'generic_api', 'lago_callback', 'lago_callback', 'lago_callback', 'lago_callback', 'openmeter'])
  const billable = stored.filter((e) => e.status !== 'not_billable')
  await until(async () => (await storedEvents(db, 'customer_external_id = $1 AND status = \'forwarded\'', [customer])).length === billable.length, 'all forwarded')

  const inLago = storedFor(lago, stored.map((e) => e.request_id))
  t.equal(inLago.size, 10)
  t.ok([...inLago.values()].every((n) => n === 1), 'exactly once each')
  const failed = stored.find((e) => e.status === 'not_billable')
  t.ok(failed !== undefined && !inLago.has(failed.request_id), 'the failed call is not billed')
  const bodies = lago.state.storedEvents().filter((e) => inLago.has(e.transaction_id))
  t.ok(bodies.every((e) => e.external_subscription_id === customer))
  t.match(bodies.find((e) => e.transaction_id === generic[0]?.litellm_call_id), { precise_total_amount_cents: '0.0183', properties: { cost_usd: '0.000183', total_tokens: 614, model: 'gpt-4o-mini', provider: 'openai' } })
  t.match(bodies.find((e) => (e.properties as { total_tokens?: number }).total_tokens === 250), { precise_total_amount_cents: '0.375', properties: { cost_usd: '0.00375' } })
  t.same(lago.state.unbilledEvents(), [])
})

t.test('a push and a pull of the same call at the same moment are stored once', async (t) => {
  const { app } = await buildForwarding(t, { WEBHOOK_TOKENS: INGEST_TOKEN, FORWARDER_ENABLED: 'false' })
  const db = await sqlClient(t)
  const team = uid('race')
  const calls = Array.from({ length: 30 }, (_, i) => simulateCall({ team, startMicros: recent() + i, ...(i % 5 === 4 ? { cacheHitOf: simulateCall({ team }) } : {}) }))
  await Promise.all(calls.flatMap((c) => {
    const pulled = readSpendLog(spendLogRow(c))
    if (!('call' in pulled)) throw new Error('unreadable row')
    return [postGeneric(app, [standardLoggingPayload(c)]), app.litellm.store([pulled.call], 'spend_logs')]
  }))
  const stored = await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(stored.length, 30, 'one event per call, whichever arrived first')
})
