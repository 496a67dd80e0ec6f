import t from 'tap'
import { LagoClient } from '../../../plugins/app/lago/client.js'
import { LagoApiError, LagoNotConfiguredError } from '../../../plugins/app/lago/errors.js'
import { build } from '../../helpers/app.js'
import { simulator, usageEvent } from '../../helpers/lago.js'

t.test('fastify.lago talks to LAGO_API_URL with LAGO_API_KEY and reports attempts as metrics', async (t) => {
  const sim = await simulator(t)
  const app = await build(t, { LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey, LAGO_TIMEOUT_MS: '2000' })
  t.ok(app.lago instanceof LagoClient)
  t.ok(app.lago.configured)
  const event = await app.lago.createEvent(usageEvent('plugin-1', 'sub-1'))
  t.equal(event.transaction_id, 'plugin-1')
  t.equal(sim.state.eventCount, 1)
  // Scoped to the events route: the app's own start-up calls (bootstrap) must not take the fault.
  sim.faults.failNext(1, 503, { route: 'POST /api/v1/events' })
  const failed = await app.lago.createEvent(usageEvent('plugin-2', 'sub-1')).catch((err: unknown) => err)
  t.ok(failed instanceof LagoApiError)
  t.match(failed, { status: 503 })

  const metrics = await app.inject({ method: 'GET', url: '/health/metrics' })
  t.match(metrics.body, /lago_request_duration_seconds_count\{operation="createEvent",outcome="200",organization="default"\} 1/)
  t.match(metrics.body, /lago_request_duration_seconds_count\{operation="createEvent",outcome="503",organization="default"\} 1/)
})

t.test('without LAGO_API_KEY the service starts and Lago calls fail with a clear error', async (t) => {
  const app = await build(t, { LAGO_API_KEY: undefined })
  t.ok(app.hasDecorator('lago'), 'the decorator is there')
  t.notOk(app.lago.configured)
  await t.rejects(app.lago.listCustomers(), LagoNotConfiguredError)
  await t.rejects(app.lago.listCustomers(), { message: /LAGO_API_KEY is not set/ })
  const health = await app.inject({ method: 'GET', url: '/health/live' })
  t.equal(health.statusCode, 200, 'the service is up')
})

t.test('closing the app closes the client pool', async (t) => {
  const sim = await simulator(t)
  const app = await build(t, { LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey })
  await app.lago.listPlans()
  const client = app.lago
  await app.close()
  await t.rejects(client.listPlans(), { name: 'LagoUnavailableError' }, 'a closed pool sends nothing')
})
