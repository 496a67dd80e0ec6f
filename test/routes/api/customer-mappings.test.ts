import t from 'tap'
import { build, sqlClient, uid } from '../../helpers/app.js'
import { ADMIN_KEY, buildForwarding, storedFor, until } from '../../helpers/forwarding.js'
import { INGEST_TOKEN, postGeneric, storedEvents } from '../../helpers/litellm.js'
import { simulateCall, standardLoggingPayload } from '../../../scripts/litellm-simulator/index.js'

const admin = { authorization: `Bearer ${ADMIN_KEY}` }

t.test('the mapping API: create, replace, read, list, delete; API key required', async (t) => {
  const app = await build(t, { API_KEYS: ADMIN_KEY })
  const team = uid('team')
  t.equal((await app.inject({ method: 'POST', url: '/api/customer-mappings', payload: { identity: 'team', value: team, customer_id: 'x' } })).statusCode, 401)
  const created = await app.inject({ method: 'POST', url: '/api/customer-mappings', headers: admin, payload: { identity: 'team', value: team, customer_id: 'acme' } })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { mapping: { identity: 'team', value: team, customer_id: 'acme' }, released_events: 0 })
  const replaced = await app.inject({ method: 'POST', url: '/api/customer-mappings', headers: admin, payload: { identity: 'team', value: team, customer_id: 'acme-corp' } })
  t.equal(replaced.statusCode, 200)
  t.equal((await app.inject({ url: `/api/customer-mappings/team/${team}`, headers: admin })).json().customer_id, 'acme-corp')
  const alias = 'acme/prod key'
  await app.inject({ method: 'POST', url: '/api/customer-mappings', headers: admin, payload: { identity: 'key_alias', value: alias, customer_id: 'acme-corp' } })
  t.equal((await app.inject({ url: `/api/customer-mappings/key_alias/${encodeURIComponent(alias)}`, headers: admin })).json().value, alias, 'values with / and spaces')
  t.match((await app.inject({ url: '/api/customer-mappings?customer_id=acme-corp', headers: admin })).json(), { total: 2, mappings: [{ identity: 'key_alias' }, { identity: 'team' }] })
  t.equal((await app.inject({ method: 'POST', url: '/api/customer-mappings', headers: admin, payload: { identity: 'customer', value: 'v', customer_id: 'c' } })).statusCode, 400)
  t.equal((await app.inject({ method: 'DELETE', url: `/api/customer-mappings/team/${team}`, headers: admin })).statusCode, 204)
  const gone = await app.inject({ method: 'DELETE', url: `/api/customer-mappings/team/${team}`, headers: admin })
  t.match([gone.statusCode, gone.json()], [404, { code: 'customer_mapping_not_found' }])
})

t.test('configured identity order, mapping table, default customer', async (t) => {
  const app = await build(t, { API_KEYS: ADMIN_KEY, WEBHOOK_TOKENS: INGEST_TOKEN, LITELLM_CUSTOMER_FIELDS: 'key_alias,team', LITELLM_DEFAULT_CUSTOMER: 'house' })
  const db = await sqlClient(t)
  const team = uid('team')
  const alias = uid('alias')
  await app.inject({ method: 'POST', url: '/api/customer-mappings', headers: admin, payload: { identity: 'key_alias', value: alias, customer_id: 'mapped-customer' } })
  const calls = [
    standardLoggingPayload(simulateCall({ endUser: 'ignored-end-user', team, keyAlias: alias })),
    standardLoggingPayload(simulateCall({ endUser: 'ignored-end-user', team })),
    { ...standardLoggingPayload(simulateCall({})), end_user: '' }
  ]
  await postGeneric(app, calls)
  const rows = await storedEvents(db, 'request_id = ANY($1)', [calls.map((c) => c.litellm_call_id)])
  t.same(rows.map((r) => [r.customer_external_id, r.metadata.customer_from]), [['mapped-customer', 'mapping:key_alias'], [team, 'team'], ['house', 'default']])
})

t.test('unmapped calls wait, are visible, and reach Lago once a mapping names their customer', async (t) => {
  const { app, sim } = await buildForwarding(t, { WEBHOOK_TOKENS: INGEST_TOKEN, LITELLM_MAPPED_CUSTOMERS_ONLY: 'true', LITELLM_CUSTOMER_FIELDS: 'team,key_alias' })
  const db = await sqlClient(t)
  const team = uid('team')
  const calls = Array.from({ length: 5 }, () => standardLoggingPayload(simulateCall({ team, startMicros: (Date.now() - 5000) * 1000 })))
  const ids = calls.map((c) => c.litellm_call_id)
  t.match((await postGeneric(app, calls)).json(), { accepted: 5, unmapped: 5 })
  const stats = (await app.inject({ url: '/webhooks/stats', headers: admin })).json()
  // This file's database is shared with its other tests: count this team's calls among the unmapped ones.
  t.ok(stats.totals.unmapped >= 5)
  t.ok(stats.unmapped_reasons.some((r: { events: number, reason: string }) => r.events === 5 && r.reason.includes(`no customer mapping for team "${team}"`)), 'the reason is listed with its count')
  // A mapped call stored after them reaching Lago shows the forwarder has claimed since they were stored.
  const sentinelTeam = uid('mapped-team')
  await app.inject({ method: 'POST', url: '/api/customer-mappings', headers: admin, payload: { identity: 'team', value: sentinelTeam, customer_id: uid('sentinel') } })
  const sentinel = standardLoggingPayload(simulateCall({ team: sentinelTeam, startMicros: (Date.now() - 5000) * 1000 }))
  t.match((await postGeneric(app, [sentinel])).json(), { accepted: 1, unmapped: 0 })
  await until(() => storedFor(sim, [sentinel.litellm_call_id]).size === 1, 'the mapped call to reach Lago')
  t.equal(storedFor(sim, ids).size, 0, 'nothing reaches Lago without a customer')
  t.notOk(sim.state.listCustomers({}).customers.some((c) => c.external_id === '(unmapped)'), 'and no Lago customer is provisioned for the placeholder')

  const customer = uid('acme')
  const mapped = await app.inject({ method: 'POST', url: '/api/customer-mappings', headers: admin, payload: { identity: 'team', value: team, customer_id: customer } })
  t.equal(mapped.json().released_events, 5)
  await until(async () => (await storedEvents(db, 'request_id = ANY($1) AND status = \'forwarded\'', [ids])).length === 5, 'forwarded')
  const stored = storedFor(sim, ids)
  t.equal(stored.size, 5)
  t.ok([...stored.values()].every((n) => n === 1), 'each exactly once')
  t.ok(sim.state.storedEvents().filter((e) => ids.includes(e.transaction_id)).every((e) => e.external_subscription_id === customer), 'billed to the mapped customer')
  t.same(sim.state.unbilledEvents(), [])
})
