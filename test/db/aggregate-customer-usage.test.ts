import t from 'tap'
import { build, seedEvent, sqlClient, uid } from '../helpers/app.js'

t.test('aggregate_customer_usage returns exact per-model sums, called as in the seed README', async (t) => {
  const app = await build(t)
  const db = await sqlClient(t)
  const customer = uid('customer')
  const now = Math.floor(Date.now() / 1000)
  const events = [
    // 0.1 + 0.2 is 0.30000000000000004 in floating point; the function must say 0.3.
    seedEvent({ customer_id: customer, model: 'gpt-4o', cost_usd: 0.1, tokens_input: 10, tokens_output: 20, total_tokens: 30, timestamp: now - 60 }),
    seedEvent({ customer_id: customer, model: 'gpt-4o', cost_usd: 0.2, tokens_input: 1, tokens_output: 2, total_tokens: 3, timestamp: now - 120 }),
    seedEvent({ customer_id: customer, model: 'claude-3', cost_usd: '0.000000000000000001', tokens_input: 5, tokens_output: 0, total_tokens: undefined, timestamp: now - 10 }),
    seedEvent({ customer_id: customer, model: 'claude-3', cost_usd: '12345678.000000000000000009', tokens_input: 0, tokens_output: 7, total_tokens: undefined, timestamp: now - 10 }),
    // Outside the window, and another customer: not counted.
    seedEvent({ customer_id: customer, model: 'gpt-4o', cost_usd: 5, timestamp: now - 40 * 86400 }),
    seedEvent({ customer_id: uid('other'), model: 'gpt-4o', cost_usd: 5, timestamp: now - 60 })
  ]
  const res = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(events) })
  t.equal(res.json().accepted, 6)

  const { rows } = await db.query(`SELECT model, total_requests::int, total_input_tokens::int, total_output_tokens::int, total_tokens::int, total_cost_usd::text
    FROM aggregate_customer_usage($1, NOW() - INTERVAL '30 days', NOW())`, [customer])
  t.same(rows, [
    { model: 'claude-3', total_requests: 2, total_input_tokens: 5, total_output_tokens: 7, total_tokens: 12, total_cost_usd: '12345678.000000000000000010' },
    { model: 'gpt-4o', total_requests: 2, total_input_tokens: 11, total_output_tokens: 22, total_tokens: 33, total_cost_usd: '0.3' }
  ])

  // The seed README's query, verbatim (literal customer id).
  await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(seedEvent({ customer_id: 'customer-123', timestamp: now - 5 })) })
  const seed = await db.query('SELECT * FROM aggregate_customer_usage(\'customer-123\', NOW() - INTERVAL \'30 days\', NOW());')
  t.match(seed.rows, [{ model: 'gpt-4o', total_requests: '1', total_tokens: '250', total_cost_usd: '0.00375' }])
})
