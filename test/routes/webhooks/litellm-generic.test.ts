import t from 'tap'
import { build, sqlClient, uid } from '../../helpers/app.js'
import { INGEST_TOKEN, bearer, postGeneric, storedEvents } from '../../helpers/litellm.js'
import { simulateCall, standardLoggingPayload } from '../../../scripts/litellm-simulator/index.js'

const env = { WEBHOOK_TOKENS: INGEST_TOKEN, API_KEYS: 'admin' }
const payload = (spec: Parameters<typeof simulateCall>[0] = {}) => standardLoggingPayload(simulateCall(spec))

t.test('a json_array batch of 512 payloads with null elements: each call stored once, content never stored', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const team = uid('team')
  const items: unknown[] = Array.from({ length: 512 }, (_, i) => i % 64 === 7 ? null : payload({ team, endUser: `${team}-user-${i % 3}`, cost: 0.000183 + i * 1e-7 }))
  const res = await postGeneric(app, items)
  t.equal(res.statusCode, 202)
  t.match(res.json(), { received: 512, accepted: 504, skipped: 8, rejected: 0, duplicate: 0, problems: [] })

  const stored = await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(stored.length, 504)
  t.ok(stored.every((e) => e.source === 'generic_api' && e.status === 'pending' && e.customer_external_id.startsWith(`${team}-user-`)))
  t.equal(stored[0].cost_usd, '0.000183', 'the cost as LiteLLM wrote it')
  t.equal(stored[1].cost_usd, '0.0001831')
  t.match(stored[0], { model: 'gpt-4o-mini', tokens_input: 412, tokens_output: 202, total_tokens: 614, metadata: { customer_from: 'end_user', call_type: 'acompletion', identities: { team } } })
  const everything = (await db.query('SELECT string_agg(metadata::text || coalesce(last_error::text, \'\'), \' \') AS all FROM litellm_usage_events')).rows[0].all as string
  for (const secret of ['SYSTEM-PROMPT-SECRET', 'USER-PROMPT-SECRET', 'COMPLETION-SECRET', 'HIDDEN-PARAM-SECRET', 'PROMPT-IN-REQUESTER-METADATA']) {
    t.notOk(everything.includes(secret), `${secret} is stored nowhere`)
  }
})

t.test('NDJSON sent as application/json, a single object, and Python NaN costs', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const team = uid('team')
  const lines = [payload({ team }), payload({ team }), payload({ team })]
  const ndjson = lines.map((p) => JSON.stringify(p)).join('\n').replace('"response_cost":0.000183', '"response_cost":NaN')
  const res = await postGeneric(app, ndjson)
  t.equal(res.statusCode, 202)
  t.match(res.json(), { received: 3, accepted: 3 })
  const single = await postGeneric(app, payload({ team }))
  t.match(single.json(), { received: 1, accepted: 1 })
  const stored = await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(stored.length, 4)
  t.equal(stored[0].cost_usd, '0', 'NaN is stored as 0…')
  t.match(stored[0].metadata.notes, [/response_cost was NaN/], '…with a note saying so')
  t.equal(stored[1].cost_usd, '0.000183')
})

t.test('an NDJSON body of GENERIC_MAX_PAYLOADS (2,048) lines is read whole and every payload stored', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const team = uid('team')
  const ndjson = Array.from({ length: 2048 }, () => JSON.stringify(payload({ team }))).join('\n')
  const res = await postGeneric(app, ndjson)
  t.equal(res.statusCode, 202)
  t.match(res.json(), { received: 2048, accepted: 2048, rejected: 0, duplicate: 0, problems: [] })
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(rows[0].n, 2048)
})

t.test('double-fired callbacks and resent batches are one call; cache hits are their own calls', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const team = uid('team')
  const original = simulateCall({ team })
  const first = standardLoggingPayload(original)
  const hit = standardLoggingPayload(simulateCall({ team, cacheHitOf: original }))
  // #5118: the success callback fires twice for one streamed call; the batch also carries it twice.
  const res = await postGeneric(app, [first, first, hit])
  t.match(res.json(), { accepted: 2, duplicate: 1 })
  const again = await postGeneric(app, [first, hit])
  t.equal(again.statusCode, 200, 'nothing new')
  t.match(again.json(), { accepted: 0, duplicate: 2 })
  const stored = await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(stored.length, 2)
  t.match(stored[1], { cost_usd: '0', litellm_id: `${original.responseId}_cache_hit`, metadata: { cache_hit: true } })
  const changed = await postGeneric(app, [{ ...first, prompt_tokens: 1 }])
  t.match(changed.json(), { conflict: 1, problems: [{ index: 0, status: 'conflict', request_id: original.callId }] })
})

t.test('failed calls are stored as not_billable; calls without an identity wait as unmapped', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const team = uid('team')
  const failure = payload({ team, failure: { errorClass: 'RateLimitError', errorCode: '429' } })
  const anonymous: Record<string, unknown> = { ...payload({}), end_user: '' }
  const res = await postGeneric(app, [failure, anonymous])
  t.match(res.json(), { accepted: 2, not_billable: 1, unmapped: 1 })
  const [failed] = await storedEvents(db, 'request_id = $1', [failure.litellm_call_id])
  t.match(failed, { status: 'not_billable', customer_external_id: team, cost_usd: '0', last_error: { kind: 'not_billable', message: /RateLimitError, status 429/ } })
  const [parked] = await storedEvents(db, 'request_id = $1', [anonymous.litellm_call_id])
  t.match(parked, { status: 'unmapped', customer_external_id: '(unmapped)', last_error: { kind: 'unmapped', message: /no LiteLLM identity/ } })
  const stats = (await app.inject({ url: '/webhooks/stats', headers: { authorization: 'Bearer admin' } })).json()
  t.match(stats.by_source.generic_api, { not_billable: 1, unmapped: 1 })
  t.match(stats.unmapped_reasons, [{ reason: /no LiteLLM identity/, events: 1 }])
  const usage = await db.query('SELECT count(*)::int AS n FROM aggregate_customer_usage($1, now() - interval \'1 day\', now() + interval \'1 day\')', [team])
  t.equal(usage.rows[0].n, 0, 'failed calls are not usage')
})

t.test('bad items are rejected one by one; a body of nothing usable is a 400; auth and limits', async (t) => {
  const app = await build(t, { ...env, GENERIC_MAX_PAYLOADS: '10', GENERIC_BODY_LIMIT_BYTES: '3000000', BODY_LIMIT_BYTES: '100000', WEBHOOK_BATCH_BODY_LIMIT_BYTES: '200000' })
  const good = payload({ team: uid('team') })
  const mixed = await postGeneric(app, [good, 'text', { model: 'no ids' }])
  t.equal(mixed.statusCode, 202)
  t.match(mixed.json(), { accepted: 1, rejected: 2, problems: [{ index: 1, status: 'rejected' }, { index: 2, message: /neither id nor litellm_call_id/ }] })
  const useless = await postGeneric(app, [{ model: 'no ids' }])
  t.equal(useless.statusCode, 400)
  t.match(useless.json(), { code: 'no_valid_events', rejected: 1, message: /^None of the 1 items is a LiteLLM StandardLoggingPayload: / })
  // A payload read, then refused while storing (a cost of 26 integer digits): the 400 says so, not "not a payload".
  const unstorable = await postGeneric(app, [{ ...payload({ team: uid('team') }), response_cost: 1e25 }])
  t.equal(unstorable.statusCode, 400)
  t.match(unstorable.json(), { code: 'no_valid_events', rejected: 1, message: /^None of the 1 items could be stored: \/cost_usd is not a non-negative decimal/ })
  t.equal((await postGeneric(app, [null, null])).statusCode, 200, 'only nulls: nothing to do, not an error')
  t.equal((await postGeneric(app, Array.from({ length: 11 }, () => null))).statusCode, 400, 'more payloads than GENERIC_MAX_PAYLOADS')
  t.equal((await postGeneric(app, '[{"id": ')).json().code, 'invalid_json')
  t.equal((await postGeneric(app, [good], {})).statusCode, 401, 'the webhook token is required')
  const big = [{ ...payload({ team: uid('big') }), messages: [{ role: 'user', content: 'x'.repeat(500_000) }] }]
  t.equal((await postGeneric(app, big)).statusCode, 202, 'larger than BODY_LIMIT_BYTES: accepted on this route')
  const tooBig = [{ ...good, messages: [{ role: 'user', content: 'x'.repeat(3_100_000) }] }]
  t.equal((await postGeneric(app, tooBig)).statusCode, 413)
  const batch = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { 'content-type': 'application/json', ...bearer }, payload: JSON.stringify(big) })
  t.equal(batch.statusCode, 413, 'other routes keep their own limit')
})
