import t from 'tap'
import type { LiteLLMCall, ReadResult } from '../../../../plugins/app/litellm/calls.js'
import { callMetadata, toUsageEvent } from '../../../../plugins/app/litellm/calls.js'
import { readCloudEvent } from '../../../../plugins/app/litellm/cloud-event.js'
import { exactCost, isoTime, litellmCallKey } from '../../../../plugins/app/litellm/fields.js'
import { centsToUnits, readLagoEvent } from '../../../../plugins/app/litellm/lago-event.js'
import { readSpendAlert } from '../../../../plugins/app/litellm/spend-alert.js'
import { readSpendLog } from '../../../../plugins/app/litellm/spend-log.js'
import { readStandardLoggingPayload } from '../../../../plugins/app/litellm/standard-logging-payload.js'
import { NO_CUSTOMER } from '../../../../plugins/app/usage-events/normalize.js'
import { simulateCall, spendLogRow, standardLoggingPayload } from '../../../../scripts/litellm-simulator/index.js'

const receivedAt = new Date('2026-11-24T12:00:00Z')
const callOf = (r: ReadResult): LiteLLMCall => {
  if (!('call' in r)) throw new Error(`rejected: ${r.rejected}`)
  return r.call
}

t.test('StandardLoggingPayload: billing fields exact, identities, keys, no content', async (t) => {
  const sim = simulateCall({ endUser: 'cust_123', team: 'team_acme', user: 'user_42', org: 'org_1', keyAlias: 'acme-prod', cost: 0.000183, tags: ['prod'] })
  const payload = standardLoggingPayload(sim)
  const call = callOf(readStandardLoggingPayload(payload, receivedAt))
  t.match(call, {
    requestId: sim.callId,
    litellmId: sim.responseId,
    litellmCallId: sim.callId,
    model: 'gpt-4o-mini',
    provider: 'openai',
    tokensInput: 412,
    tokensOutput: 202,
    totalTokens: 614,
    costUsd: '0.000183',
    identity: { identities: { end_user: 'cust_123', team: 'team_acme', user: 'user_42', org: 'org_1', key_alias: 'acme-prod' } }
  })
  t.equal(call.timestamp.getTime(), Math.round(sim.startMicros / 1000), 'startTime, to the millisecond')
  t.match(call.apiKeyHash, /^[0-9a-f]{64}$/)
  t.equal(call.failure, undefined)
  t.match(call.attributes, { call_type: 'acompletion', model_group: 'gpt-4o-mini', request_tags: ['prod', 'User-Agent: OpenAI', 'User-Agent: OpenAI/Python 1.54.4'], team_alias: 'TEAM_ACME', status: 'success' })
  const stored = JSON.stringify(callMetadata(call, { customer: 'cust_123', via: 'end_user' }))
  for (const secret of ['SYSTEM-PROMPT-SECRET', 'USER-PROMPT-SECRET', 'COMPLETION-SECRET', 'HIDDEN-PARAM-SECRET', 'PROMPT-IN-REQUESTER-METADATA']) {
    t.notOk(stored.includes(secret), `${secret} is not kept`)
  }
})

t.test('StandardLoggingPayload variants: failure, cache hit, null and NaN costs, call_id, SDK calls, garbage', async (t) => {
  const failed = callOf(readStandardLoggingPayload(standardLoggingPayload(simulateCall({ team: 't', failure: { errorClass: 'RateLimitError', errorCode: '429' } })), receivedAt))
  t.match(failed.failure, /failed \(RateLimitError, status 429, from openai\)/)
  t.notMatch(failed.failure, /USER-PROMPT-SECRET/, 'the error text (which quotes the prompt) is not kept')
  t.equal(failed.costUsd, '0')
  t.match(failed.attributes, { error_class: 'RateLimitError', error_code: '429' })

  const original = simulateCall({ team: 't' })
  const hit = callOf(readStandardLoggingPayload(standardLoggingPayload(simulateCall({ team: 't', cacheHitOf: original })), receivedAt))
  t.equal(hit.litellmId, `${original.responseId}_cache_hit`, 'the clock suffix is dropped')
  t.equal(hit.matchWindowMs, 2, 'a cache hit matches on start time too')
  t.not(hit.requestId, original.callId, 'a cache hit is its own call')
  t.equal(hit.costUsd, '0')

  const nullCost = callOf(readStandardLoggingPayload({ ...standardLoggingPayload(simulateCall({})), response_cost: null }, receivedAt))
  t.equal(nullCost.costUsd, '0')
  t.match(nullCost.notes, [/response_cost was null/])
  const nanCost = callOf(readStandardLoggingPayload({ ...standardLoggingPayload(simulateCall({})), response_cost: 'NaN' }, receivedAt))
  t.equal(nanCost.costUsd, '0')
  t.match(nanCost.notes, [/response_cost was NaN/])

  const { litellm_call_id: callId, ...older } = standardLoggingPayload(simulateCall({}))
  t.equal(callOf(readStandardLoggingPayload({ ...older, call_id: callId }, receivedAt)).requestId, callId, 'the one version that named it call_id')
  const noCallId = callOf(readStandardLoggingPayload(older, receivedAt))
  t.equal(noCallId.requestId, older.id, 'without a call id, the id is the key')

  const sdk = callOf(readStandardLoggingPayload({ ...standardLoggingPayload(simulateCall({})), end_user: '', model_group: '' }, receivedAt))
  t.same(sdk.identity, { identities: {} }, 'an SDK call outside the proxy carries no identity')

  t.match(readStandardLoggingPayload('text', receivedAt), { rejected: /not a StandardLoggingPayload/ })
  t.match(readStandardLoggingPayload({ model: 'x' }, receivedAt), { rejected: /neither id nor litellm_call_id/ })
})

t.test('legacy v1 generic payloads: every value stringified', async (t) => {
  const v1 = {
    id: 'chatcmpl-v1abc',
    call_type: 'acompletion',
    cache_hit: 'False',
    startTime: '2025-11-24 10:00:00.123456',
    endTime: '2025-11-24 10:00:01.987654',
    model: 'gpt-4o-mini',
    user: 'cust_9',
    modelParameters: "{'temperature': 0.2}",
    messages: "[{'role': 'user', 'content': 'V1-PROMPT'}]",
    response: "ModelResponse(id='chatcmpl-v1abc', choices=[Choices(message=Message(content='V1-COMPLETION'))])",
    usage: 'Usage(completion_tokens=202, prompt_tokens=412, total_tokens=614, completion_tokens_details=None, prompt_tokens_details=PromptTokensDetails(cached_tokens=0))',
    metadata: "{'user_api_key_hash': 'abc123', 'user_api_key_alias': 'acme-prod', 'user_api_key_team_id': 'team_acme', 'user_api_key_end_user_id': None}",
    cost: '1.83e-04'
  }
  const call = callOf(readStandardLoggingPayload(v1, receivedAt))
  t.match(call, { requestId: 'chatcmpl-v1abc', litellmId: 'chatcmpl-v1abc', tokensInput: 412, tokensOutput: 202, totalTokens: 614, costUsd: '0.000183', apiKeyHash: 'abc123' })
  t.same(call.identity, { identities: { end_user: 'cust_9', team: 'team_acme', key_alias: 'acme-prod', key_hash: 'abc123' } })
  t.equal(call.timestamp.toISOString(), '2025-11-24T10:00:00.123Z', 'a naive datetime is read as UTC')
  t.notMatch(JSON.stringify(callMetadata(call, { unmapped: 'x' })), /V1-PROMPT|V1-COMPLETION/)
  const hit = callOf(readStandardLoggingPayload({ ...v1, cache_hit: 'True', cost: 'None' }, receivedAt))
  t.equal(hit.requestId, `chatcmpl-v1abc_cache_hit@${Date.parse('2025-11-24T10:00:00.123Z')}`, 'v1 cache hits share the id: the start time tells them apart')
  t.equal(hit.costUsd, '0')
})

t.test('Lago events as LiteLLM\'s callback sends them, every spelling', async (t) => {
  const current = readLagoEvent({
    transaction_id: '9d1a4f0e-2c3b-4d5e-8f90-1a2b3c4d5e6f',
    external_subscription_id: 'team_acme',
    code: 'litellm_usage',
    properties: { model: 'gpt-4o-mini', response_cost: 0.000183, prompt_tokens: 412, completion_tokens: 202, total_tokens: 614 }
  }, receivedAt)
  t.ok('call' in current)
  if (!('call' in current)) return
  t.match(current.call, { requestId: '9d1a4f0e-2c3b-4d5e-8f90-1a2b3c4d5e6f', model: 'gpt-4o-mini', tokensInput: 412, tokensOutput: 202, totalTokens: 614, costUsd: '0.000183', identity: { subject: 'team_acme' } })
  t.equal(current.call.timestamp, receivedAt, 'no timestamp: the time of receipt')
  t.equal(current.call.litellmId, undefined, 'no LiteLLM id in this format')

  const docs = readLagoEvent({ transaction_id: 't2', external_customer_id: 'cust_1', code: 'c', properties: { model: 'gpt-4o', response_cost: null, input_tokens: 10, output_tokens: 5 } }, receivedAt)
  t.ok('call' in docs && docs.call.tokensInput === 10 && docs.call.tokensOutput === 5 && docs.call.totalTokens === 15 && docs.call.costUsd === '0')
  t.match('call' in docs && docs.call, { identity: { subject: 'cust_1' }, notes: [/external_customer_id/, /response_cost was null/] })

  const image = readLagoEvent({ transaction_id: 't3', external_subscription_id: 'c', code: 'c', properties: { model: 'dall-e-3', response_cost: 0.04 } }, receivedAt)
  t.match('call' in image && image.call, { tokensInput: 0, totalTokens: 0, costUsd: '0.04', notes: [/no token counts/] })

  const timed = readLagoEvent({ transaction_id: 't4', code: 'c', timestamp: '1741219251.590', precise_total_amount_cents: '18.3', properties: {} }, receivedAt)
  t.match('call' in timed && timed.call, { costUsd: '0.183', identity: { subject: undefined } })
  t.equal('call' in timed && timed.call.timestamp.getTime(), 1741219251590)

  t.same(readLagoEvent({ code: '', timestamp: '2025-11-24T10:00:00Z' }, receivedAt), { errors: { transaction_id: ['value_is_mandatory'], code: ['value_is_mandatory'], timestamp: ['invalid_format'] } })
  t.same(readLagoEvent('x', receivedAt), { errors: { event: ['value_is_invalid'] } })

  const guarded = readLagoEvent({ transaction_id: 't5', external_subscription_id: 'c', code: 'c', properties: { model: 'm', response_cost: 0.1 } }, receivedAt, 1500)
  t.match('call' in guarded && guarded.call, { litellmId: /^lago-content:[0-9a-f]{64}$/, matchWindowMs: 1500 })
  t.equal(centsToUnits('0.375'), '0.00375')
  t.equal(centsToUnits('12345'), '123.45')
})

t.test('CloudEvents as LiteLLM\'s OpenMeter callback sends them', async (t) => {
  const event = { specversion: '1.0', type: 'litellm_tokens', id: 'chatcmpl-om1', time: '2025-11-24T10:00:01.987654+00:00', subject: 'cust_123', source: 'litellm-proxy', data: { model: 'gpt-4o-mini', cost: 0.000183, prompt_tokens: 412, completion_tokens: 202, total_tokens: 614 } }
  const call = callOf(readCloudEvent(event, receivedAt))
  t.match(call, { requestId: 'litellm-proxy:chatcmpl-om1', litellmId: 'chatcmpl-om1', costUsd: '0.000183', totalTokens: 614, identity: { subject: 'cust_123' } })
  t.equal(call.timestamp.toISOString(), '2025-11-24T10:00:01.988Z')
  const old = callOf(readCloudEvent({ ...event, subject: ['cust_9', null], data: { model: 'dall-e-3', cost: null } }, receivedAt))
  t.match(old, { identity: { subject: 'cust_9' }, costUsd: '0', totalTokens: 0, notes: [/subject was a list/, /cost was null/] })
  t.match(readCloudEvent({ ...event, specversion: undefined, id: '' }, receivedAt), { rejected: /specversion, id missing/ })
  t.match(readCloudEvent({ ...event, specversion: '0.3' }, receivedAt), { rejected: /unsupported/ })
})

t.test('spend-log rows: the same call as its pushed payload, cache hits included', async (t) => {
  const sim = simulateCall({ endUser: 'cust_1', team: 'team_a', keyAlias: 'k' })
  const pushed = callOf(readStandardLoggingPayload(standardLoggingPayload(sim), receivedAt))
  const pulled = callOf(readSpendLog(spendLogRow(sim)))
  t.equal(pulled.litellmId, pushed.litellmId, 'same LiteLLM id')
  t.equal(pulled.requestId, sim.responseId)
  t.same(pulled.identity, pushed.identity, 'same identities')
  t.match(pulled, { tokensInput: pushed.tokensInput, tokensOutput: pushed.tokensOutput, costUsd: pushed.costUsd, apiKeyHash: pushed.apiKeyHash })
  t.ok(Math.abs(pulled.timestamp.getTime() - pushed.timestamp.getTime()) <= 1, 'start times agree to the millisecond')

  const hitSim = simulateCall({ team: 'team_a', cacheHitOf: sim })
  const hitPushed = callOf(readStandardLoggingPayload(standardLoggingPayload(hitSim), receivedAt))
  const hitPulled = callOf(readSpendLog(spendLogRow(hitSim)))
  t.not(standardLoggingPayload(hitSim).id, spendLogRow(hitSim).request_id, 'LiteLLM suffixes the two records of a cache hit differently')
  t.equal(hitPulled.litellmId, hitPushed.litellmId, 'both read as the same cache hit')

  const stringy = { ...spendLogRow(simulateCall({ team: 't' })), metadata: JSON.stringify({ user_api_key_alias: 'alias-1', status: 'failure', error_information: { error_class: 'BadRequestError' } }), request_tags: '["a"]', status: undefined }
  t.match(callOf(readSpendLog(stringy)), { identity: { identities: { key_alias: 'alias-1' } }, failure: /BadRequestError/, attributes: { request_tags: ['a'] } })
  t.match(readSpendLog({ startTime: '2025-11-24', spend: 1, users: {} }), { rejected: /summarized/ })
})

t.test('spend alerts, exact costs, times and LiteLLM keys', async (t) => {
  t.match(readSpendAlert({ spend: 0.000183, customer_id: 'cust_1', token: 'h', key_alias: 'a', event_group: 'end_user', event: 'spend_tracked' }), { alert: { customerId: 'cust_1', spendUsd: '0.000183', apiKeyHash: 'h', eventGroup: 'end_user' } })
  t.match(readSpendAlert({ event: 'budget_crossed', spend: 10 }), { ignored: /budget_crossed/ })
  t.same(exactCost(1e-7, 'c'), { cost: '0.0000001' })
  t.same(exactCost('0.000183', 'c'), { cost: '0.000183' })
  t.match(exactCost(-1, 'c'), { cost: '0', note: /not a cost/ })
  t.equal(isoTime('2025-11-24T10:00:00+00:00')?.toISOString(), '2025-11-24T10:00:00.000Z')
  t.equal(isoTime('2025-11-24T10:00:00.9996Z')?.toISOString(), '2025-11-24T10:00:01.000Z')
  t.equal(isoTime('yesterday'), undefined)
  t.same(litellmCallKey('chatcmpl-1_cache_hit1763978401.123456', false), { litellmId: 'chatcmpl-1_cache_hit', matchWindowMs: 2 })
  t.same(litellmCallKey('chatcmpl-1', false), { litellmId: 'chatcmpl-1' })
})

t.test('a call becomes a usage event: held as not_billable or unmapped, with its reason', async (t) => {
  const call = callOf(readStandardLoggingPayload(standardLoggingPayload(simulateCall({ failure: { errorClass: 'Timeout', errorCode: '408' } })), receivedAt))
  const failed = toUsageEvent(call, 'generic_api', { unmapped: 'no identity' })
  t.match(failed, { customerExternalId: NO_CUSTOMER, hold: { kind: 'not_billable' }, source: 'generic_api' })
  const parked = toUsageEvent({ ...call, failure: undefined }, 'generic_api', { unmapped: 'no identity' })
  t.match(parked, { hold: { kind: 'unmapped', message: 'no identity' } })
  const billable = toUsageEvent({ ...call, failure: undefined }, 'generic_api', { customer: 'acme', via: 'mapping:team' })
  t.equal(billable.hold, undefined)
  t.match(billable.metadata, { customer_from: 'mapping:team', identities: {} })
  const huge = toUsageEvent({ ...call, attributes: { blob: 'x'.repeat(400), list: Array.from({ length: 50 }, () => 'y'.repeat(300)) } }, 'generic_api', { customer: 'c', via: 'team' })
  t.match(huge.metadata, { identities: {}, customer_from: 'team', attributes_dropped: 'too large' }, 'identities survive a metadata that is too large')
  t.notOk('blob' in huge.metadata || 'list' in huge.metadata, 'the attributes are dropped')
})
