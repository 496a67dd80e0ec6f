import { readFile } from 'node:fs/promises'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildForwarding, until } from '../../helpers/forwarding.js'
import { apiClient } from '../../helpers/api.js'

// The seed README's curl examples for the API and the usage webhook, verbatim (the project's README shows them
// too). Clients copied them: they must keep working unchanged.
const SEED_EXAMPLES = [
  String.raw`curl -H "Authorization: Bearer your-lago-api-key" \
     http://localhost:3002/api/customers`,
  String.raw`curl -X POST http://localhost:3002/api/customers \
  -H "Authorization: Bearer your-lago-api-key" \
  -H "Content-Type: application/json" \
  -d '{
    "external_id": "customer-123",
    "name": "Acme Corporation",
    "email": "billing@acme.com",
    "plan_code": "ai_usage_plan"
  }'`,
  String.raw`curl http://localhost:3002/api/customers/customer-123 \
  -H "Authorization: Bearer your-lago-api-key"`,
  String.raw`curl -X POST http://localhost:3002/webhooks/litellm \
  -H "Content-Type: application/json" \
  -d '{
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
  }'`,
  String.raw`curl -X POST http://localhost:3002/api/billing/plans \
  -H "Authorization: Bearer your-lago-api-key" \
  -H "Content-Type: application/json" \
  -d '{
    "name": "Premium AI Plan",
    "code": "premium_ai_plan",
    "interval": "monthly",
    "amount_cents": 2000,
    "amount_currency": "USD",
    "charges": [{
      "billable_metric_id": "ai_usage_metric_id",
      "charge_model": "standard",
      "properties": {
        "amount": "0.002"
      }
    }]
  }'`,
  String.raw`curl http://localhost:3002/api/customers/customer-123/invoices \
  -H "Authorization: Bearer your-lago-api-key"`
]

interface CurlRequest { method: 'GET' | 'POST', url: string, headers: Record<string, string>, body?: string }

/** Splits a shell command line as sh would for these examples: quotes, and backslash-newline continuations. */
function shellWords (command: string): string[] {
  const words: string[] = []
  let word: string | null = null
  for (let i = 0; i < command.length; i++) {
    const c = command[i]
    if (c === '\\' && command[i + 1] === '\n') { i++; continue }
    if (/\s/.test(c)) {
      if (word !== null) words.push(word)
      word = null
      continue
    }
    if (c === '\'' || c === '"') {
      const end = command.indexOf(c, i + 1)
      if (end < 0) throw new Error(`unterminated ${c} in ${command}`)
      word = (word ?? '') + command.slice(i + 1, end)
      i = end
      continue
    }
    word = (word ?? '') + c
  }
  if (word !== null) words.push(word)
  return words
}

/** What curl would send for these options (-X, -H, -d, the URL). */
function parseCurl (command: string): CurlRequest {
  const [program, ...args] = shellWords(command)
  if (program !== 'curl') throw new Error(`not a curl command: ${command}`)
  const request: CurlRequest = { method: 'GET', url: '', headers: {} }
  let explicitMethod = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '-X') {
      request.method = args[++i] as CurlRequest['method']
      explicitMethod = true
    } else if (arg === '-H') {
      const header = args[++i]
      const colon = header.indexOf(':')
      request.headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim()
    } else if (arg === '-d') {
      request.body = args[++i]
      if (!explicitMethod) request.method = 'POST'
      // curl's default for -d, unless a Content-Type header says otherwise.
      request.headers['content-type'] ??= 'application/x-www-form-urlencoded'
    } else {
      request.url = new URL(arg).pathname
    }
  }
  return request
}

const run = async (app: FastifyInstance, command: string) => {
  const { method, url, headers, body } = parseCurl(command)
  return await app.inject({ method, url, headers, ...(body !== undefined ? { payload: body } : {}) })
}

t.test('the project README shows the seed examples verbatim', async (t) => {
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8')
  for (const example of SEED_EXAMPLES) t.ok(readme.includes(example), `README has: ${example.split('\n')[0]}`)
})

t.test('the seed README\'s curl examples work unchanged, in the order it shows them', async (t) => {
  // The seed's key is the Lago API key; the seed's plan exists once the bootstrap has run.
  const { app, sim } = await buildForwarding(t, { LAGO_API_KEY: 'your-lago-api-key' }, { apiKey: 'your-lago-api-key' })
  await until(() => app.bootstrap.state().status === 'done', 'the Lago bootstrap')
  // The seed's plan names its billable metric "ai_usage_metric_id": a metric with that code must exist.
  const metric = await apiClient(app).post('/api/billing/metrics', { name: 'AI usage', code: 'ai_usage_metric_id', aggregation_type: 'sum_agg', field_name: 'total_tokens' })
  t.equal(metric.statusCode, 201, metric.body)

  const [list, create, get, event, plan, invoices] = SEED_EXAMPLES
  const listed = await run(app, list)
  t.equal(listed.statusCode, 200, listed.body)
  t.match(listed.json(), { customers: Array, meta: { page: 1 } })

  const created = await run(app, create)
  t.equal(created.statusCode, 200, created.body)
  t.match(created.json(), {
    external_id: 'customer-123',
    name: 'Acme Corporation',
    email: 'billing@acme.com',
    subscription: { external_id: 'customer-123', plan_code: 'ai_usage_plan', status: 'active' }
  })
  t.equal((await run(app, create)).statusCode, 200, 'the same request again is fine (idempotent)')

  const fetched = await run(app, get)
  t.equal(fetched.statusCode, 200)
  t.match(fetched.json(), { external_id: 'customer-123', currency: 'USD', subscription: { plan_code: 'ai_usage_plan' } })

  const sent = await run(app, event)
  t.equal(sent.statusCode, 202, sent.body)
  t.match(sent.json(), { status: 'accepted', request_id: 'req-abc123' })
  await until(() => sim.state.storedEvents().some((e) => e.transaction_id === 'req-abc123'), 'the event in Lago')
  t.equal(sim.state.storedEvents().find((e) => e.transaction_id === 'req-abc123')?.external_subscription_id, 'customer-123',
    'sent to the subscription the API created')

  const planned = await run(app, plan)
  t.equal(planned.statusCode, 201, planned.body)
  t.match(planned.json(), {
    code: 'premium_ai_plan',
    amount_cents: 2000,
    charges: [{ billable_metric_code: 'ai_usage_metric_id', billable_metric_id: metric.json().lago_id, charge_model: 'standard', properties: { amount: '0.002' } }]
  })

  const none = await run(app, invoices)
  t.equal(none.statusCode, 200)
  t.same(none.json().invoices, [])
  sim.state.closePeriod('customer-123', { issuing_date: '2026-11-30' })
  const one = await run(app, invoices)
  t.equal(one.json().invoices.length, 1)
  t.match(one.json().invoices[0], { status: 'finalized', issuing_date: '2026-11-30', currency: 'USD' })
})

t.test('the seed examples without the key, or with another, are refused alike', async (t) => {
  const { app } = await buildForwarding(t, { LAGO_API_KEY: 'your-lago-api-key', FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' }, { apiKey: 'your-lago-api-key' })
  const [list] = SEED_EXAMPLES
  const missing = await run(app, list.replace('-H "Authorization: Bearer your-lago-api-key" \\\n     ', ''))
  const wrong = await run(app, list.replace('your-lago-api-key', 'not-the-key'))
  t.equal(missing.statusCode, 401)
  t.equal(wrong.statusCode, 401)
  t.equal(missing.body, wrong.body)
})
