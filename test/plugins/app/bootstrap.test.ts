import t from 'tap'
import { ensureBillingDefaults } from '../../../plugins/app/bootstrap/defaults.js'
import { billingDefaults } from '../../../plugins/app/bootstrap/index.js'
import { loadConfig } from '../../../plugins/external/config.js'
import { clientFor, simulator } from '../../helpers/lago.js'
import { buildForwarding, until } from '../../helpers/forwarding.js'

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
})
