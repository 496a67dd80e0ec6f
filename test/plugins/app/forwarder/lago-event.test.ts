import t from 'tap'
import { lagoEventBody, unixSecondsText } from '../../../../plugins/app/forwarder/lago-event.js'

const event = {
  request_id: 'req-1',
  timestamp: new Date('2026-11-26T01:01:22.970Z'),
  cost_usd: '0.00375',
  tokens_input: 100,
  tokens_output: 150,
  total_tokens: 250,
  model: 'gpt-4o',
  provider: 'openai'
}

t.test('the Lago event, field by field', async (t) => {
  const body = lagoEventBody(event, 'sub-1', 'ai_usage')
  t.equal(body.transaction_id, 'req-1', 'transaction_id: the request id')
  t.equal(body.external_subscription_id, 'sub-1')
  t.equal(body.code, 'ai_usage', 'code: the metric code')
  // 2026-11-26T01:01:22Z is 1795654882 s after the epoch (20783 days * 86400 + 3682 s).
  t.equal(body.timestamp, '1795654882.97', 'timestamp: Unix seconds as a string, milliseconds kept')
  t.equal(body.precise_total_amount_cents, '0.375', 'the cost in cents, exact')
  t.same(body.properties, { tokens_input: 100, tokens_output: 150, total_tokens: 250, model: 'gpt-4o', provider: 'openai', cost_usd: '0.00375' })
  t.same(Object.keys(body).sort(), ['code', 'external_subscription_id', 'precise_total_amount_cents', 'properties', 'timestamp', 'transaction_id'], 'nothing else')
  t.equal(JSON.stringify(lagoEventBody(event, 'sub-1', 'ai_usage')), JSON.stringify(body), 'the same input gives the same bytes')
})

t.test('timestamps are never JSON numbers with decimals', async (t) => {
  const cases: Array<[string, string]> = [
    ['1970-01-01T00:00:00.000Z', '0'],
    ['2026-11-26T01:01:22.000Z', '1795654882'],
    ['2026-11-26T01:01:22.500Z', '1795654882.5'],
    ['2026-11-26T01:01:22.050Z', '1795654882.05'],
    ['2026-11-26T01:01:22.001Z', '1795654882.001'],
    ['2026-11-26T01:01:22.999Z', '1795654882.999']
  ]
  for (const [iso, expected] of cases) t.equal(unixSecondsText(new Date(iso)), expected, iso)
  t.throws(() => unixSecondsText(new Date('not a date')), RangeError)
})

t.test('cents from dollars: exact, no float on the way', async (t) => {
  const cases: Array<[string, string]> = [
    ['0', '0'],
    ['1', '100'],
    ['0.1', '10'],
    ['0.000001', '0.0001'],
    ['12.3450', '1234.5'],
    ['0.30000000000000004', '30.000000000000004'],
    ['123456789012345.6789', '12345678901234567.89']
  ]
  for (const [usd, cents] of cases) t.equal(lagoEventBody({ ...event, cost_usd: usd }, 's', 'm').precise_total_amount_cents, cents, usd)
})
