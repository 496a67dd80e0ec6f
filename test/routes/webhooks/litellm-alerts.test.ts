import t from 'tap'
import { buildApp, serverOptions } from '../../../app.js'
import { build, sqlClient, testConfig, uid } from '../../helpers/app.js'
import { INGEST_TOKEN } from '../../helpers/litellm.js'

const SECRET = 'alerts-secret-0123456789abcdef'
const env = { WEBHOOK_TOKENS: INGEST_TOKEN, LITELLM_ALERTS_SECRET: SECRET, API_KEYS: 'admin' }

/** What LiteLLM's alerting webhook posts: only Content-type, no credentials. */
const alert = (body: Record<string, unknown>) => ({ method: 'POST' as const, url: `/webhooks/litellm/alerts/${SECRET}`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
const spendTracked = (customer: string, spend: number | null) => ({
  spend,
  max_budget: null,
  soft_budget: null,
  token: 'a'.repeat(64),
  customer_id: customer,
  user_id: null,
  team_id: null,
  team_alias: null,
  user_email: null,
  key_alias: 'acme-prod',
  projected_exceeded_date: null,
  projected_spend: null,
  event_group: 'end_user',
  event: 'spend_tracked',
  event_message: `Customer spend tracked. Customer=${customer}, spend=${String(spend)}`
})

t.test('spend_tracked alerts: exactly 200, a per-customer ledger, never usage', async (t) => {
  const app = await build(t, env)
  const db = await sqlClient(t)
  const customer = uid('cust')
  for (const spend of [0.000183, 0.1, 0.2]) {
    const res = await app.inject(alert(spendTracked(customer, spend)))
    t.equal(res.statusCode, 200)
    t.same(res.json(), { status: 'recorded' })
  }
  const budget = await app.inject(alert({ ...spendTracked(customer, 10), event: 'budget_crossed', event_group: 'customer' }))
  t.same([budget.statusCode, budget.json()], [200, { status: 'ignored', reason: 'budget_crossed is not a spend event' }])
  t.equal((await db.query('SELECT count(*)::int AS n FROM litellm_usage_events')).rows[0].n, 0, 'nothing billable')
  const ledger = await app.inject({ url: `/api/spend-ledger?customer_id=${customer}`, headers: { authorization: 'Bearer admin' } })
  t.match(ledger.json(), { customers: [{ customer_id: customer, entries: 3, spend_usd: '0.300183' }] })
  t.equal((await app.inject({ url: '/api/spend-ledger' })).statusCode, 401)
  const metrics = (await app.inject('/health/metrics')).body
  t.match(metrics, /litellm_alerts_total\{event="spend_tracked",outcome="recorded"\} 3/)
})

t.test('the secret is the credential: wrong or unset is 404, and no bearer token is needed', async (t) => {
  const app = await build(t, env)
  t.equal((await app.inject({ ...alert(spendTracked('c', 1)), url: '/webhooks/litellm/alerts/not-the-secret-at-all' })).statusCode, 404)
  const unset = await build(t, { WEBHOOK_TOKENS: INGEST_TOKEN })
  const res = await unset.inject(alert(spendTracked('c', 1)))
  t.equal(res.statusCode, 404)
  t.notMatch(res.body, SECRET)
})

t.test('the secret never reaches the logs', async (t) => {
  const lines: string[] = []
  const config = await testConfig({ ...env, LOG_LEVEL: 'info', LOG_REQUESTS: 'true' })
  const options = serverOptions(config)
  const app = await buildApp(config, { logger: { ...(options.logger as object), stream: { write: (line: string) => { lines.push(line) } } } })
  t.teardown(() => app.close())
  await app.ready()
  await app.inject(alert(spendTracked('c', 1)))
  await app.inject({ ...alert(spendTracked('c', 1)), payload: '{"broken": ' })
  t.ok(lines.some((l) => l.includes('/webhooks/litellm/alerts/[redacted]')), 'the request is logged, its secret redacted')
  t.notOk(lines.some((l) => l.includes(SECRET)), 'no log line holds the secret')
})
