import t from 'tap'
import { sqlClient, uid } from '../../../helpers/app.js'
import { ingest, until } from '../../../helpers/forwarding.js'
import { raw } from '../../../helpers/lago.js'
import { admin, ADMIN_API_KEY, buildTwoOrganizations, eachOnce, eventsOf, heldBy, ingestAs, organizationCounts, storeFor, twoOrganizationsForwarding } from '../../../helpers/organizations.js'

// Two organizations, each billing into its own Lago simulator with its own key. Long scenarios (an outage, a large
// backlog) are in organizations.slow.test.ts.

const health = async (app: Awaited<ReturnType<typeof buildTwoOrganizations>>['app']) => (await app.inject('/health')).json()
const forwarderOf = (body: { organizations: Array<{ id: string, forwarder: { status: string } }> }, id: string) => body.organizations.find((o) => o.id === id)?.forwarder

t.test('each organization\'s events reach only its own Lago, exactly once, sent with its own key', async (t) => {
  const { app, simA, simB, b, tokenB } = await buildTwoOrganizations(t)
  const db = await sqlClient(t)
  const [cusA, cusB] = [uid('cus-a'), uid('cus-b')]
  const ofA = eventsOf(cusA, 120)
  const ofB = eventsOf(cusB, 130)
  t.equal(await ingest(app, ofA), 120)
  await ingestAs(app, tokenB, ofB)

  await until(async () => (await organizationCounts(db, 'default', [cusA])).forwarded === 120 && (await organizationCounts(db, b, [cusB])).forwarded === 130, 'both organizations forwarded', undefined,
    async () => ({ a: await organizationCounts(db, 'default', [cusA]), b: await organizationCounts(db, b, [cusB]), organizations: (await health(app)).organizations, sentToA: simA.requests.entries().length, sentToB: simB.requests.entries().length }))
  t.ok(eachOnce(simA, ofA), 'A\'s Lago holds each of A\'s events once')
  t.ok(eachOnce(simB, ofB), 'B\'s Lago holds each of B\'s events once')
  t.equal(heldBy(simA, ofB), 0, 'none of B\'s events in A\'s Lago')
  t.equal(heldBy(simB, ofA), 0, 'none of A\'s events in B\'s Lago')
  for (const sim of [simA, simB]) t.equal(sim.requests.entries().filter((r) => r.status === 401).length, 0, 'no call was ever sent with the other organization\'s key')

  // Bootstrap put the default metric and plan into each organization's Lago, and the customers were provisioned there.
  for (const sim of [simA, simB]) {
    t.equal((await raw(sim, 'GET', '/api/v1/billable_metrics/ai_usage')).status, 200, 'metric in place')
    t.equal((await raw(sim, 'GET', '/api/v1/plans/ai_usage_plan')).status, 200, 'plan in place')
  }
  t.equal((await raw(simB, 'GET', `/api/v1/customers/${cusB}`)).status, 200, 'B\'s customer is in B\'s Lago')
  t.equal((await raw(simA, 'GET', `/api/v1/customers/${cusB}`)).status, 404, '...and not in A\'s')

  const body = await health(app)
  t.equal(body.status, 'ok')
  t.match(body.organizations.find((o: { id: string }) => o.id === b), { status: 'active', forwarder: { status: 'running' }, backlog: { unsent: 0, oldest_unsent_age_seconds: null }, bootstrap: { status: 'done' } })
  t.match(body.organizations.find((o: { id: string }) => o.id === 'default'), { status: 'active', forwarder: { status: 'running' }, backlog: { unsent: 0 } })

  const metrics = (await app.inject('/health/metrics')).body
  t.match(metrics, new RegExp(`forwarder_events_total\\{organization="${b}",outcome="forwarded"\\} 130`), 'forwarder metrics per organization')
  t.match(metrics, /forwarder_events_total\{organization="default",outcome="forwarded"\} 120/)
  t.match(metrics, new RegExp(`lago_request_duration_seconds_count\\{operation="createBatchEvents",outcome="200",organization="${b}"\\} \\d+`), 'Lago client metrics per organization')
})

t.test('B\'s Lago refusing B\'s key pauses only B; A forwards meanwhile; a rotated key resumes B at once, exactly once', async (t) => {
  // Warm up: both deliver while the keys are good.
  const { app, simA, simB, b, tokenB, db, cusA, cusB, countsA, countsB } = await twoOrganizationsForwarding(t)

  simB.settings.apiKey = 'b-rotated-in-lago' // B's Lago now refuses the key we hold for B
  const ofB = eventsOf(cusB, 60)
  await ingestAs(app, tokenB, ofB)
  await until(async () => forwarderOf(await health(app), b)?.status === 'unauthorized', 'B paused as unauthorized')

  const ofA = eventsOf(cusA, 200)
  await ingest(app, ofA)
  await until(async () => (await countsA()).forwarded === 201, 'A forwards while B is paused')
  t.ok(eachOnce(simA, ofA))

  const body = await health(app)
  t.equal(body.status, 'degraded', 'a paused organization degrades the service')
  t.match(body.organizations.find((o: { id: string }) => o.id === b), { forwarder: { status: 'unauthorized', since: String, next_probe_at: String, last_error: /401/ }, backlog: { unsent: 60, oldest_unsent_age_seconds: Number } })
  t.match(body.organizations.find((o: { id: string }) => o.id === 'default'), { forwarder: { status: 'running' }, backlog: { unsent: 0 } })
  t.equal(body.forwarder.status, 'running', 'the top-level forwarder state is default\'s, as in a single-organization setup')
  t.same(await countsB(), { forwarded: 1, pending: 60 }, 'B\'s events wait: nothing dead, nothing failed')
  t.equal((await db.query('SELECT max(attempts)::int AS a FROM litellm_usage_events WHERE organization_id = $1 AND status = \'pending\'', [b])).rows[0].a, 0, 'no attempt spent')
  t.match((await app.inject('/health/metrics')).body, new RegExp(`forwarder_organization_paused\\{organization="${b}",reason="unauthorized"\\} 1`))
  t.notMatch((await app.inject('/health/metrics')).body, /forwarder_organization_paused\{organization="default"/, 'A is not paused')
  // Every organization's forwarding in the stats is the admin's view; B's own key sees B's.
  const stats = await app.inject({ method: 'GET', url: '/webhooks/stats', headers: { authorization: `Bearer ${ADMIN_API_KEY}` } })
  t.equal(stats.statusCode, 200)
  t.match(stats.json().organizations.find((o: { id: string }) => o.id === b), { forwarder: { status: 'unauthorized' }, backlog: { unsent: 60 } }, '/webhooks/stats shows it too')

  // The operator rotates B's key here too (admin API): the change resumes B without waiting for the next probe.
  await admin(app, 'PUT', `/api/organizations/${b}/lago-key`, { lago_api_key: 'b-rotated-in-lago' })
  await until(async () => (await countsB()).forwarded === 61, 'B catches up')
  t.ok(eachOnce(simB, ofB), 'each of B\'s events exactly once in B\'s Lago')
  t.equal(heldBy(simA, ofB), 0, 'none in A\'s')
  t.equal(forwarderOf(await health(app), b)?.status, 'running')
})

t.test('a disabled organization is not forwarded: its events wait, and go once it is enabled again', async (t) => {
  const { app, simB, b } = await buildTwoOrganizations(t)
  const db = await sqlClient(t)
  await admin(app, 'POST', `/api/organizations/${b}/disable`)
  const [cusA, cusB] = [uid('cus-a'), uid('cus-b')]
  // Events B stored before it was disabled (a disabled organization's token no longer ingests).
  const ofB = eventsOf(cusB, 40)
  await storeFor(db, b, ofB)
  await until(async () => forwarderOf(await health(app), b)?.status === 'disabled', 'B shown disabled')
  // A is forwarded meanwhile: once A's event is in, a whole poll cycle has passed over B's waiting events.
  const ofA = eventsOf(cusA, 5)
  await ingest(app, ofA)
  await until(async () => (await organizationCounts(db, 'default', [cusA])).forwarded === 5, 'A forwarded')
  t.same(await organizationCounts(db, b, [cusB]), { pending: 40 }, 'B\'s events wait')
  t.equal(simB.requests.entries({ route: '/api/v1/events/batch' }).length, 0, 'nothing sent to B\'s Lago')
  t.match((await health(app)).organizations.find((o: { id: string }) => o.id === b), { status: 'disabled', forwarder: { status: 'disabled', reason: /disabled/ }, backlog: { unsent: 40 } })

  await admin(app, 'PATCH', `/api/organizations/${b}`, { status: 'active' })
  await until(async () => (await organizationCounts(db, b, [cusB])).forwarded === 40, 'B forwarded once enabled')
  t.ok(eachOnce(simB, ofB))
})
