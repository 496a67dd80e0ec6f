import t from 'tap'
import { build, sqlClient, uid } from '../../../helpers/app.js'
import { toUsageEvent } from '../../../../plugins/app/litellm/calls.js'
import { readSpendLog } from '../../../../plugins/app/litellm/spend-log.js'
import { readStandardLoggingPayload } from '../../../../plugins/app/litellm/standard-logging-payload.js'
import { insertUsageEvents, sameLiteLLMCall } from '../../../../plugins/app/usage-events/repository.js'
import type { UsageEvent } from '../../../../plugins/app/usage-events/normalize.js'
import { simulateCall, spendLogRow, standardLoggingPayload } from '../../../../scripts/litellm-simulator/index.js'

const pushedAndPulled = (spec: Parameters<typeof simulateCall>[0]): [UsageEvent, UsageEvent] => {
  const call = simulateCall(spec)
  const push = readStandardLoggingPayload(standardLoggingPayload(call), new Date())
  const pull = readSpendLog(spendLogRow(call))
  if (!('call' in push) || !('call' in pull)) throw new Error('unreadable')
  const customer = { customer: spec.team ?? 'c', via: 'team' }
  return [toUsageEvent(push.call, 'generic_api', customer), toUsageEvent(pull.call, 'spend_logs', customer)]
}

t.test('which events are the same LiteLLM call', async (t) => {
  const [push, pull] = pushedAndPulled({ team: 't' })
  t.ok(sameLiteLLMCall(push, pull), 'a push and a pull of one call')
  t.notOk(sameLiteLLMCall(push, { ...pull, litellmCallId: 'another-call' }), 'call ids that disagree: two calls that reused a provider id')
  const [hitPush, hitPull] = pushedAndPulled({ team: 't', cacheHitOf: simulateCall({}) })
  t.ok(sameLiteLLMCall(hitPush, hitPull), 'a cache hit, despite its two clock suffixes')
  t.notOk(sameLiteLLMCall(hitPush, { ...hitPull, timestamp: new Date(hitPull.timestamp.getTime() + 50) }), 'another hit of the same cached response')
  t.notOk(sameLiteLLMCall({ ...push, litellmId: undefined }, { ...pull, litellmId: undefined }), 'no LiteLLM id: never matched by it')
})

t.test('separate concurrent writes of one call store it once (advisory locks on the LiteLLM id)', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const team = uid('race')
  const pairs = Array.from({ length: 40 }, (_, i) => pushedAndPulled({ team, ...(i % 4 === 3 ? { cacheHitOf: simulateCall({}) } : {}) }))
  const outcomes = await Promise.all(pairs.flatMap(([push, pull]) => [insertUsageEvents(app.db, [push]), insertUsageEvents(app.db, [pull])]))
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1', [team])
  t.equal(rows[0].n, 40, 'one row per call')
  const statuses = outcomes.map(([o]) => o.status)
  t.equal(statuses.filter((s) => s === 'accepted').length, 40)
  t.equal(statuses.filter((s) => s === 'duplicate').length, 40, 'the other delivery is a duplicate')
})
