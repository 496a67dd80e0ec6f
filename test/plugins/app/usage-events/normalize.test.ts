import t from 'tap'
import { fingerprintOf, fromLiteLLMEvent, normalizeDecimal, numberToDecimal, sanitizeMetadata } from '../../../../plugins/app/usage-events/normalize.js'

t.test('numberToDecimal writes the decimal a JSON producer meant', async (t) => {
  const cases: Array<[number, string]> = [
    [0.00375, '0.00375'], [0.1, '0.1'], [0.000183, '0.000183'], [1e-7, '0.0000001'], [1.5e-10, '0.00000000015'],
    [6e-7, '0.0000006'], [1.83e-5, '0.0000183'], [123, '123'], [1e21, '1000000000000000000000'], [0, '0'], [-0, '0'],
    [2.5e-8, '0.000000025'], [12.5, '12.5']
  ]
  for (const [n, expected] of cases) t.equal(numberToDecimal(n), expected, `${n}`)
  t.throws(() => numberToDecimal(Number.NaN))
  t.throws(() => numberToDecimal(Number.POSITIVE_INFINITY))
})

t.test('normalizeDecimal gives one spelling per value', async (t) => {
  t.equal(normalizeDecimal('0.003750'), '0.00375')
  t.equal(normalizeDecimal('000.5'), '0.5')
  t.equal(normalizeDecimal('10.000'), '10')
  t.equal(normalizeDecimal('0.0'), '0')
  t.equal(normalizeDecimal('-0.0'), '0')
  t.equal(normalizeDecimal('100'), '100')
})

t.test('sanitizeMetadata drops prompt and response text at every level and stays small', async (t) => {
  t.same(sanitizeMetadata(undefined), {})
  t.same(sanitizeMetadata({ team: 't', Messages: ['hi'], nested: { completion: 'x', ok: 1, deeper: { prompt: 'p', keep: true } } }),
    { team: 't', nested: { ok: 1, deeper: { keep: true } } })
  t.same(sanitizeMetadata({ huge: Array.from({ length: 50 }, () => 'y'.repeat(400)) }), { truncated: true })
  t.equal((sanitizeMetadata({ long: 'z'.repeat(2000) }).long as string).length, 513, 'long strings are clipped')
})

t.test('sanitizeMetadata keeps a "__proto__" key a plain key and keeps the keys\' order', async (t) => {
  // As JSON.parse makes it: an own property named __proto__, at two levels.
  const metadata = JSON.parse('{"b": 1, "__proto__": {"admin": true}, "a": {"__proto__": 2, "z": 3}}') as Record<string, unknown>
  const clean = sanitizeMetadata(metadata)
  t.equal(Object.getPrototypeOf(clean), Object.prototype, 'the prototype is not replaced')
  t.equal((clean as { admin?: unknown }).admin, undefined, 'nothing is inherited from the key')
  t.equal(JSON.stringify(clean), '{"b":1,"__proto__":{"admin":true},"a":{"__proto__":2,"z":3}}', 'stored as sent, in order')
})

t.test('fromLiteLLMEvent fills defaults and fingerprints the billing content only', async (t) => {
  const received = new Date('2026-01-01T00:00:00Z')
  const base = { customer_id: 'c', model: 'm', cost_usd: 0.5, request_id: 'r' }
  const e = fromLiteLLMEvent({ ...base, tokens_input: 3, tokens_output: 4 }, 'webhook', received)
  t.match(e, { provider: 'unknown', eventType: 'usage', totalTokens: 7, costUsd: '0.5', timestamp: received, apiKeyHash: null, source: 'webhook', metadata: {} })
  const sameContent = fromLiteLLMEvent({ ...base, tokens_input: 3, tokens_output: 4, api_key_hash: 'k', cost_usd: '0.50' }, 'webhook_batch', new Date())
  t.equal(sameContent.fingerprint, e.fingerprint, 'key hash, source, spelling of the cost and time of receipt do not matter')
  const otherCost = fromLiteLLMEvent({ ...base, tokens_input: 3, tokens_output: 4, cost_usd: 0.51 }, 'webhook', received)
  t.not(otherCost.fingerprint, e.fingerprint)
  const withTime = fromLiteLLMEvent({ ...base, timestamp: 1700000000 }, 'webhook', received)
  const otherTime = fromLiteLLMEvent({ ...base, timestamp: 1700000001 }, 'webhook', received)
  t.not(withTime.fingerprint, otherTime.fingerprint, 'a sent timestamp is part of the content')
  t.equal(fingerprintOf(withTime, true), withTime.fingerprint)
})
