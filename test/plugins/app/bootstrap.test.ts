import t from 'tap'
import { ensureBillingDefaults } from '../../../plugins/app/bootstrap/defaults.js'
import { ensureWebhookEndpoint } from '../../../plugins/app/bootstrap/webhook-endpoint.js'
import { billingDefaults } from '../../../plugins/app/bootstrap/index.js'
import { loadConfig } from '../../../plugins/external/config.js'
import { clientFor, raw, simulator } from '../../helpers/lago.js'
import { FAST_FORWARDING, FAST_TUNING, buildForwarding, ingest, until } from '../../helpers/forwarding.js'
import { build as buildService, seedEvent, sqlClient } from '../../helpers/app.js'
import { lagoCalls } from '../../helpers/api.js'

t.test('bootstrap creates the metric and plan once; running it again, or concurrently, changes nothing', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  const defaults = billingDefaults(loadConfig({}))
  const results = await Promise.all([ensureBillingDefaults(client, defaults), ensureBillingDefaults(client, defaults), ensureBillingDefaults(client, defaults)])
  t.equal(results.filter((r) => r.metric === 'created').length, 1, 'the metric is created by exactly one run')
  t.equal(results.filter((r) => r.plan === 'created').length, 1, 'the plan too')
  t.same(await ensureBillingDefaults(client, defaults), { metric: 'existing', plan: 'existing' })

  const metric = await client.getBillableMetric('ai_usage')
  t.match(metric, { code: 'ai_usage', aggregation_type: 'sum_agg', field_name: 'total_tokens' })
  const plan = await client.getPlan('ai_usage_plan')
  t.match(plan, { code: 'ai_usage_plan', interval: 'monthly', amount_cents: 0, amount_currency: 'USD' })
  t.match(plan.charges, [{ lago_billable_metric_id: metric.lago_id, billable_metric_code: 'ai_usage', charge_model: 'standard', properties: { amount: '0.000002', pricing_group_keys: ['model', 'provider'] } }])
})

t.test('the dynamic charge bills the exact cost; prices come from config', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await ensureBillingDefaults(client, billingDefaults(loadConfig({ LAGO_PLAN_CHARGE_MODEL: 'dynamic', LAGO_PLAN_CODE: 'pass_through', LAGO_PLAN_AMOUNT_CENTS: '1500', LAGO_PLAN_CURRENCY: 'EUR', LAGO_PLAN_INTERVAL: 'yearly' })))
  const plan = await client.getPlan('pass_through')
  t.match(plan, { interval: 'yearly', amount_cents: 1500, amount_currency: 'EUR', charges: [{ charge_model: 'dynamic' }] })
})

t.test('an operator\'s changes in Lago are kept', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  const defaults = billingDefaults(loadConfig({}))
  await ensureBillingDefaults(client, defaults)
  await client.updatePlan('ai_usage_plan', { name: 'Renamed by finance' })
  await ensureBillingDefaults(client, { ...defaults, unitAmount: '9' })
  t.equal((await client.getPlan('ai_usage_plan')).name, 'Renamed by finance')
})

t.test('on start, the service bootstraps in the background, retrying while Lago is not up yet', async (t) => {
  const { app, sim } = await buildForwarding(t)
  await until(async () => (await app.inject('/health')).json().bootstrap.status === 'done', 'bootstrap done')
  t.ok(sim.state.summary().plans >= 1)

  const late = await buildForwarding(t, {}, {})
  late.sim.faults.outage(600, '503')
  await until(async () => (await late.app.inject('/health')).json().bootstrap.status === 'done', 'bootstrap done after the outage', 10_000)
})

t.test('events that arrived before the plan existed go to Lago as soon as bootstrap has made it, not at the next re-check', async (t) => {
  const sim = await simulator(t, { recordEventBodies: true })
  // Lago refuses to create the plan until the test lets it: bootstrap keeps retrying meanwhile.
  const refusal = sim.faults.failNext(1_000_000, 500, { route: 'POST /api/v1/plans' })
  // The periodic re-check of unmapped customers is 10 min away: only the bootstrap's signal can release them.
  const app = await buildService(t, { LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey, ...FAST_FORWARDING, AUTO_PROVISION_CUSTOMERS: 'true' },
    { ...FAST_TUNING, unmappedRecheckIntervalMs: 600_000 })
  const db = await sqlClient(t)
  const events = Array.from({ length: 5 }, () => seedEvent({ customer_id: 'early-customer', timestamp: Math.floor(Date.now() / 1000) }))
  t.equal(await ingest(app, events), 5)
  const waiting = async (): Promise<string[]> => (await db.query(
    "SELECT last_error->>'message' AS m FROM litellm_usage_events WHERE customer_external_id = 'early-customer' AND status = 'unmapped'")).rows.map((r) => r.m as string)
  await until(async () => (await waiting()).length === 5, 'the events to wait as unmapped (no plan yet)')
  t.match((await waiting())[0], /plan_not_found/, 'because Lago has no plan yet')
  t.equal(app.bootstrap.state().status, 'failing')

  sim.faults.remove(refusal)
  const started = Date.now()
  await until(() => app.bootstrap.state().status === 'done', 'bootstrap done')
  await until(() => sim.state.storedEvents().filter((e) => e.external_subscription_id === 'early-customer').length === 5, 'the 5 events in Lago')
  t.ok(Date.now() - started < 60_000, `in Lago ${Date.now() - started} ms after the plan could be made (the re-check is 10 min away)`)
})

const PUBLIC_URL = 'http://integration.test:3002'
const OUR_URL = `${PUBLIC_URL}/webhooks/lago`
const endpointWrites = (sim: Parameters<typeof lagoCalls>[0]): string[] => lagoCalls(sim).filter((c) => /^(POST|PUT|DELETE) \/api\/v1\/webhook_endpoints/.test(c))

t.test('ensureWebhookEndpoint: created once, then kept as it is; a wrong signature algorithm is corrected in place', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  // Another consumer's endpoint in the same Lago is left alone.
  t.equal((await raw(sim, 'POST', '/api/v1/webhook_endpoints', { webhook_endpoint: { webhook_url: 'https://other.example/hooks', signature_algo: 'jwt' } })).status, 200)
  t.equal(await ensureWebhookEndpoint(client, `${PUBLIC_URL}/`, 'hmac'), 'created', 'a trailing slash on PUBLIC_URL is ignored')
  const ours = sim.webhooks.endpoints.find((e) => e.webhook_url === OUR_URL)
  t.match(ours, { signature_algo: 'hmac', name: 'lago-api-integration' })
  t.equal(await ensureWebhookEndpoint(client, PUBLIC_URL, 'hmac'), 'existing')
  t.equal(await ensureWebhookEndpoint(client, PUBLIC_URL, 'jwt'), 'updated', 'another algorithm: updated')
  t.same(sim.webhooks.endpoints.map((e) => [e.webhook_url, e.signature_algo]), [['https://other.example/hooks', 'jwt'], [OUR_URL, 'jwt']], 'still one endpoint of ours, now jwt; the other untouched')
  t.equal(sim.webhooks.endpoints[1].lago_id, ours?.lago_id, 'the same endpoint, updated in place')
})

t.test('the service\'s bootstrap registers the endpoint; a second bootstrap keeps it; a wrong algorithm is corrected', async (t) => {
  const sim = await simulator(t)
  const { build } = await import('../../helpers/app.js')
  const start = async () => await build(t, { LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey, PUBLIC_URL, LAGO_WEBHOOK_HMAC_KEY: 'hmac-key-1', BILLING_AUDIT_INTERVAL_MS: '0', FORWARDER_ENABLED: 'false' })
  const first = await start()
  await until(() => first.bootstrap.state().status === 'done', 'the first bootstrap')
  t.same(sim.webhooks.endpoints.map((e) => [e.webhook_url, e.signature_algo]), [[OUR_URL, 'hmac']], 'registered, signing hmac (its key is set)')
  const writes = endpointWrites(sim).length
  t.equal(writes, 1, 'one POST')
  const lagoId = sim.webhooks.endpoints[0].lago_id

  // A second instance (or a restart) finds it: nothing is written, still exactly one endpoint.
  const second = await start()
  await until(() => second.bootstrap.state().status === 'done', 'the second bootstrap')
  t.equal(endpointWrites(sim).length, writes, 'the existing endpoint is kept: no POST or PUT')
  t.same(sim.webhooks.endpoints.map((e) => e.lago_id), [lagoId], 'exactly one endpoint, the same')

  // Someone switched it to jwt in Lago's UI: the next bootstrap puts the configured algorithm back.
  sim.webhooks.endpoints[0].signature_algo = 'jwt'
  const third = await start()
  await until(() => third.bootstrap.state().status === 'done', 'the third bootstrap')
  t.same(endpointWrites(sim).slice(writes), [`PUT /api/v1/webhook_endpoints/${lagoId}`], 'updated in place')
  t.same(sim.webhooks.endpoints.map((e) => [e.lago_id, e.signature_algo]), [[lagoId, 'hmac']], 'one endpoint, hmac again')
})

t.test('npm run bootstrap: reports what it did, exits non-zero when Lago cannot be reached', async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const os = await import('node:os')
  const path = await import('node:path')
  const { runTypeScript } = await import('../../helpers/app.js')
  const run = promisify(execFile)
  const script = runTypeScript(path.join(import.meta.dirname, '..', '..', '..', 'scripts', 'bootstrap.ts'))
  const sim = await simulator(t)
  const env = { PATH: process.env.PATH, LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey }
  const first = await run(process.execPath, script, { cwd: os.tmpdir(), env })
  t.match(first.stdout, /billable metric ai_usage: created\nplan ai_usage_plan: created/)
  const second = await run(process.execPath, script, { cwd: os.tmpdir(), env })
  t.match(second.stdout, /billable metric ai_usage: existing\nplan ai_usage_plan: existing/)
  const refused = await run(process.execPath, script, { cwd: os.tmpdir(), env: { ...env, LAGO_API_KEY: 'wrong' } }).catch((err: { code: number, stderr: string }) => err)
  t.match(refused, { code: 1, stderr: /bootstrap failed.*401/ })
  t.match(second.stdout, /webhook endpoint: not registered \(PUBLIC_URL is not set\)/)
  t.same(sim.webhooks.endpoints, [], 'no endpoint without PUBLIC_URL')

  // With PUBLIC_URL: registered once (jwt without an HMAC key), kept, then corrected to hmac once its key is set.
  const withUrl = { ...env, PUBLIC_URL }
  t.match((await run(process.execPath, script, { cwd: os.tmpdir(), env: withUrl })).stdout, `webhook endpoint ${OUR_URL} (jwt): created`)
  t.match((await run(process.execPath, script, { cwd: os.tmpdir(), env: withUrl })).stdout, `webhook endpoint ${OUR_URL} (jwt): existing`)
  t.match((await run(process.execPath, script, { cwd: os.tmpdir(), env: { ...withUrl, LAGO_WEBHOOK_HMAC_KEY: 'hmac-key-1' } })).stdout, `webhook endpoint ${OUR_URL} (hmac): updated`)
  t.same(sim.webhooks.endpoints.map((e) => [e.webhook_url, e.signature_algo]), [[OUR_URL, 'hmac']], 'exactly one endpoint in Lago, signing hmac')
})
