import t from 'tap'
import { build, seedEvent, sqlClient, uid } from '../../../helpers/app.js'
import { FAST_FORWARDING, FAST_TUNING, buildForwarding, ingest, statusCounts, storedFor, until } from '../../../helpers/forwarding.js'
import { clientFor } from '../../../helpers/lago.js'

t.test('an unknown customer is provisioned once, even from concurrent batches of two replicas', async (t) => {
  const { app, sim } = await buildForwarding(t, { FORWARDER_BATCH_SIZE: '5' })
  // A second replica on the same database and the same Lago.
  const replica = await build(t, { LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey, ...FAST_FORWARDING, FORWARDER_BATCH_SIZE: '5' }, FAST_TUNING)
  const db = await sqlClient(t)
  const customer = uid('new-customer')
  const events = Array.from({ length: 60 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) - 30 }))
  await ingest(app, events.slice(0, 30))
  await ingest(replica, events.slice(30))
  await until(async () => (await statusCounts(db, customer)).forwarded === 60, 'all forwarded')

  const creations = sim.requests.entries({ route: '/api/v1/subscriptions' }).filter((e) => e.method === 'POST')
  t.equal(creations.length, 1, 'one subscription created')
  t.equal(sim.requests.entries({ route: '/api/v1/customers' }).filter((e) => e.method === 'POST').length, 1, 'one customer created')
  const { client } = clientFor(t, sim)
  const subscription = await client.getSubscription(customer)
  t.match(subscription, { external_id: customer, external_customer_id: customer, plan_code: 'ai_usage_plan', status: 'active' })
  t.ok(Date.parse(subscription.started_at as string) <= (Math.floor(Date.now() / 1000) - 30) * 1000, 'started no later than the first event')
  t.same(sim.state.unbilledEvents(), [], 'every event falls inside the subscription')
  const { rows } = await db.query('SELECT subscription_external_id, plan_code, provisioned_by FROM customers WHERE external_id = $1', [customer])
  t.same(rows, [{ subscription_external_id: customer, plan_code: 'ai_usage_plan', provisioned_by: 'forwarder' }])
  t.equal(storedFor(sim, events.map((e) => e.request_id)).size, 60)
})

t.test('a customer that already has a subscription in Lago is used as is', async (t) => {
  const { app, sim } = await buildForwarding(t)
  const db = await sqlClient(t)
  const { client } = clientFor(t, sim)
  const customer = uid('existing')
  await until(async () => (await app.inject('/health')).json().bootstrap.status === 'done', 'bootstrap')
  await client.createSubscription({ external_customer_id: customer, plan_code: 'ai_usage_plan', external_id: `${customer}-sub`, subscription_at: new Date(Date.now() - 3600_000).toISOString() })
  const events = Array.from({ length: 3 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  await ingest(app, events)
  await until(async () => (await statusCounts(db, customer)).forwarded === 3, 'forwarded')
  const stored = sim.state.storedEvents().filter((e) => e.transaction_id === events[0].request_id)
  t.equal(stored[0].external_subscription_id, `${customer}-sub`)
  t.equal(sim.requests.entries({ route: '/api/v1/subscriptions' }).filter((e) => e.method === 'POST').length, 1, 'no second subscription')
})

t.test('with AUTO_PROVISION_CUSTOMERS=false, events wait as unmapped and go once the customer exists', async (t) => {
  const { app, sim } = await buildForwarding(t, { AUTO_PROVISION_CUSTOMERS: 'false' })
  const db = await sqlClient(t)
  const customer = uid('unknown')
  const events = Array.from({ length: 7 }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))
  await ingest(app, events)
  await until(async () => (await statusCounts(db, customer)).unmapped === 7, 'unmapped')
  const { rows } = await db.query('SELECT last_error FROM litellm_usage_events WHERE customer_external_id = $1 LIMIT 1', [customer])
  t.match(rows[0].last_error, { kind: 'unmapped', message: /no active Lago subscription.*AUTO_PROVISION_CUSTOMERS/ })
  const stats = (await app.inject({ url: '/webhooks/stats', headers: { authorization: 'Bearer admin-key' } })).json()
  t.ok(stats.totals.unmapped >= 7, 'visible in /webhooks/stats')
  t.equal(sim.requests.entries({ route: '/api/v1/subscriptions' }).filter((e) => e.method === 'POST').length, 0, 'nothing created in Lago')

  // The customer appears in Lago (created there directly): the periodic re-check finds it.
  const { client } = clientFor(t, sim)
  await until(async () => (await app.inject('/health')).json().bootstrap.status === 'done', 'bootstrap')
  await client.createSubscription({ external_customer_id: customer, plan_code: 'ai_usage_plan', external_id: customer, subscription_at: new Date(Date.now() - 60_000).toISOString() })
  await until(async () => (await statusCounts(db, customer)).forwarded === 7, 'forwarded after the customer exists')
  t.equal(storedFor(sim, events.map((e) => e.request_id)).size, 7)
})

t.test('a missing default plan parks events as unmapped with the reason, and bootstrap fixes it', async (t) => {
  const { app, sim } = await buildForwarding(t, { BOOTSTRAP_ON_START: 'false' })
  const db = await sqlClient(t)
  const customer = uid('no-plan')
  await ingest(app, [seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) })])
  await until(async () => (await statusCounts(db, customer)).unmapped === 1, 'unmapped')
  const { rows } = await db.query('SELECT last_error FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  t.match(rows[0].last_error.message, /ai_usage_plan/)
  const { ensureBillingDefaults } = await import('../../../../plugins/app/bootstrap/defaults.js')
  const { billingDefaults } = await import('../../../../plugins/app/bootstrap/index.js')
  const { client } = clientFor(t, sim)
  await ensureBillingDefaults(client, billingDefaults(app.config))
  await until(async () => (await statusCounts(db, customer)).forwarded === 1, 'forwarded once the plan exists')
})
