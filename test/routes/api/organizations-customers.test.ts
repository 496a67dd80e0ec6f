import { randomBytes } from 'node:crypto'
import t from 'tap'
import { build, sqlClient, uid } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'
import { serviceWithSecondOrganization } from '../../helpers/organizations.js'
import { postGeneric, storedEvents } from '../../helpers/litellm.js'
import { simulateCall, standardLoggingPayload, type CallSpec } from '../../../scripts/litellm-simulator/index.js'

// Customers per organization: each organization's mappings and identity order decide who pays for its calls.
// `default` (API_KEYS, WEBHOOK_TOKENS, LITELLM_CUSTOMER_FIELDS) and a second organization made through the admin API.
const ADMIN = 'admin-key-' + randomBytes(6).toString('hex')
const KEY_A = 'service-key-a-' + randomBytes(6).toString('hex')
const TOKEN_A = 'ingest-token-a-' + randomBytes(6).toString('hex')

type Test = Parameters<typeof build>[0]

/** The tests share this file's database: each names its second organization afresh. */
async function setup (t: Test, env: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  const id = `cust-${randomBytes(3).toString('hex')}`
  const { app, admin, keyB, tokenB } = await serviceWithSecondOrganization(t, { admin: ADMIN, keyA: KEY_A, tokenA: TOKEN_A }, id, { env, extra })
  return { id, app, admin, apiA: apiClient(app, KEY_A), apiB: apiClient(app, keyB), tokenB, db: await sqlClient(t) }
}

type App = Awaited<ReturnType<typeof build>>

/** Posts one LiteLLM call (generic_api format) with a credential; the stored row's organization, customer and how it was found. */
async function ingestCall (app: App, db: Awaited<ReturnType<typeof sqlClient>>, token: string, spec: CallSpec) {
  const payload = standardLoggingPayload(simulateCall(spec))
  const res = await postGeneric(app, [payload], { authorization: `Bearer ${token}` })
  if (res.statusCode !== 202) throw new Error(`${res.statusCode} ${res.body}`)
  return await storedCall(db, String(payload.litellm_call_id))
}

async function storedCall (db: Awaited<ReturnType<typeof sqlClient>>, requestId: string) {
  const { rows } = await db.query(`SELECT organization_id, customer_external_id AS customer, status, metadata->>'customer_from' AS via
                                     FROM litellm_usage_events WHERE request_id = $1`, [requestId])
  if (rows.length !== 1) throw new Error(`${rows.length} rows for ${requestId}`)
  return rows[0] as { organization_id: string, customer: string, status: string, via: string | null }
}

t.test('mappings belong to an organization: the same identity bills a different customer in each, and each sees only its own', async (t) => {
  const { id, app, admin, apiA, apiB, tokenB, db } = await setup(t)
  const team = uid('team')

  // The same LiteLLM team, mapped in both organizations: two mappings, each created (not one replacing the other).
  const inA = await apiA.post('/api/customer-mappings', { identity: 'team', value: team, customer_id: 'cus-a' })
  const inB = await apiB.post('/api/customer-mappings', { identity: 'team', value: team, customer_id: 'cus-b' })
  t.equal(inA.statusCode, 201, inA.body)
  t.equal(inB.statusCode, 201, 'created in B, not a replacement of A\'s')
  t.match(inA.json().mapping, { organization_id: 'default', identity: 'team', value: team, customer_id: 'cus-a' })
  t.match(inB.json().mapping, { organization_id: id, identity: 'team', value: team, customer_id: 'cus-b' })
  t.equal((await apiA.get(`/api/customer-mappings/team/${team}`)).json().customer_id, 'cus-a')
  t.equal((await apiB.get(`/api/customer-mappings/team/${team}`)).json().customer_id, 'cus-b')

  // Events with each organization's token land on its own organization's customer.
  t.match(await ingestCall(app, db, TOKEN_A, { team }), { organization_id: 'default', customer: 'cus-a', status: 'pending', via: 'mapping:team' })
  t.match(await ingestCall(app, db, tokenB, { team }), { organization_id: id, customer: 'cus-b', status: 'pending', via: 'mapping:team' })

  // A mapping only B has: A cannot read, list or delete it (404, as for one that does not exist), nor is A billed by it.
  const onlyB = uid('team-b')
  t.equal((await apiB.post('/api/customer-mappings', { identity: 'team', value: onlyB, customer_id: 'cus-only-b' })).statusCode, 201)
  t.match((await apiA.get(`/api/customer-mappings/team/${onlyB}`)).json(), { statusCode: 404, code: 'customer_mapping_not_found' })
  t.match((await apiA.delete(`/api/customer-mappings/team/${onlyB}`)).json(), { statusCode: 404, code: 'customer_mapping_not_found' })
  t.equal((await apiB.get(`/api/customer-mappings/team/${onlyB}`)).json().customer_id, 'cus-only-b', 'still there after A\'s delete')
  t.same((await apiA.get('/api/customer-mappings?customer_id=cus-only-b')).json(), { mappings: [], total: 0 })
  const listB = (await apiB.get('/api/customer-mappings')).json()
  t.same(listB.mappings.map((m: { value: string, customer_id: string }) => [m.value, m.customer_id]).sort(), [[onlyB, 'cus-only-b'], [team, 'cus-b']].sort(), 'B lists exactly its own two')
  t.equal(listB.total, 2)
  t.match(await ingestCall(app, db, TOKEN_A, { team: onlyB }), { organization_id: 'default', customer: onlyB, via: 'team' }, 'B\'s mapping does not apply to A\'s calls')

  // The admin key acts on the organization it names; default otherwise.
  t.equal((await admin.get(`/api/customer-mappings/team/${onlyB}`, { 'x-organization-id': id })).json().customer_id, 'cus-only-b')
  t.equal((await admin.get(`/api/customer-mappings/team/${onlyB}`)).statusCode, 404)
  t.match((await admin.get(`/api/customer-mappings/team/${onlyB}`, { 'x-organization-id': 'nope' })).json(), { statusCode: 404, code: 'organization_not_found' })
  const byAdmin = await admin.post('/api/customer-mappings', { identity: 'user', value: 'u-1', customer_id: 'cus-admin' }, { 'x-organization-id': id })
  t.match(byAdmin.json(), { mapping: { organization_id: id, customer_id: 'cus-admin' } })
  t.equal((await apiB.get('/api/customer-mappings/user/u-1')).statusCode, 200)
  t.equal((await apiA.get('/api/customer-mappings/user/u-1')).statusCode, 404)

  // A service key naming another organization is refused, not silently turned to its own.
  const misdirected = await apiA.post('/api/customer-mappings', { identity: 'user', value: 'u-2', customer_id: 'cus-x' }, { 'x-organization-id': id })
  t.match(misdirected.json(), { statusCode: 403, code: 'admin_required', message: /belongs to "default"/ })
  t.equal((await apiA.get('/api/customer-mappings/user/u-2')).statusCode, 404, 'nothing stored in A')
  t.equal((await apiB.get('/api/customer-mappings/user/u-2')).statusCode, 404, 'nor in B')
  t.match((await apiB.get('/api/customer-mappings/user/u-1', { 'x-organization-id': 'default' })).json(), { statusCode: 403, code: 'admin_required' })
  t.equal((await apiB.get('/api/customer-mappings/user/u-1', { 'x-organization-id': id })).statusCode, 200, 'naming its own organization is fine')

  // B deletes its own; A's mapping of the same team stays.
  t.equal((await apiB.delete(`/api/customer-mappings/team/${team}`)).statusCode, 204)
  t.equal((await apiA.get(`/api/customer-mappings/team/${team}`)).json().customer_id, 'cus-a')
  t.match(await ingestCall(app, db, tokenB, { team }), { organization_id: id, customer: team, via: 'team' }, 'B\'s calls fall back to the identity itself')
  t.match(await ingestCall(app, db, TOKEN_A, { team }), { organization_id: 'default', customer: 'cus-a' })
})

t.test('waiting calls are released only by a mapping of their own organization', async (t) => {
  const { id, app, admin, apiA, apiB, tokenB, db } = await setup(t, { LITELLM_MAPPED_CUSTOMERS_ONLY: 'true' })
  const team = uid('team-wait')
  const waiting = await ingestCall(app, db, tokenB, { team })
  t.match(waiting, { customer: '(unmapped)', status: 'unmapped' })
  // The problems view is per organization: B's shows the waiting identity, with its organization (where to map it);
  // default's does not.
  const problems = (await apiB.get('/api/problems?limit=200')).json()
  t.match(problems.unmapped_identities.filter((u: { value: string }) => u.value === team), [{ organization_id: id, identity: 'team', events: 1 }])
  const ofDefault = (await admin.get('/api/problems?limit=200')).json()
  t.same(ofDefault.unmapped_identities.filter((u: { value: string }) => u.value === team), [], 'not in default\'s view')

  const inA = await apiA.post('/api/customer-mappings', { identity: 'team', value: team, customer_id: 'cus-a' })
  t.equal(inA.json().released_events, 0, 'A\'s mapping releases none of B\'s calls')
  const [row] = await storedEvents(db, 'organization_id <> \'default\' AND metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(row.status, 'unmapped', 'B\'s call still waits')

  const inB = await apiB.post('/api/customer-mappings', { identity: 'team', value: team, customer_id: 'cus-b' })
  t.equal(inB.json().released_events, 1)
  const [released] = await storedEvents(db, 'organization_id <> \'default\' AND metadata->\'identities\'->>\'team\' = $1', [team])
  t.match(released, { customer_external_id: 'cus-b', status: 'pending', metadata: { customer_from: 'mapping:team' } })
})

t.test('each organization\'s customer identity order applies to its own calls; default keeps LITELLM_CUSTOMER_FIELDS', async (t) => {
  // default: end_user first (the service's order); B: team, then user.
  const { id, app, admin, tokenB, db } = await setup(t, { LITELLM_CUSTOMER_FIELDS: 'end_user,user,team' }, { customer_fields: ['team', 'user'] })
  const spec = (): CallSpec => ({ endUser: uid('end-user'), user: uid('user'), team: uid('team') })

  const a = spec()
  t.match(await ingestCall(app, db, TOKEN_A, a), { organization_id: 'default', customer: a.endUser, via: 'end_user' })
  const b = spec()
  t.match(await ingestCall(app, db, tokenB, b), { organization_id: id, customer: b.team, via: 'team' })

  // A changed order applies to the next call at once.
  t.equal((await admin.patch(`/api/organizations/${id}`, { customer_fields: ['user', 'team'] })).statusCode, 200)
  const b2 = spec()
  t.match(await ingestCall(app, db, tokenB, b2), { organization_id: id, customer: b2.user, via: 'user' })
  const onlyTeam = { team: uid('team') }
  t.match(await ingestCall(app, db, tokenB, onlyTeam), { customer: onlyTeam.team, via: 'team' }, 'falls back along its order')
  const a2 = spec()
  t.match(await ingestCall(app, db, TOKEN_A, a2), { organization_id: 'default', customer: a2.endUser }, 'default is untouched')

  // null: the service's order again.
  t.equal((await admin.patch(`/api/organizations/${id}`, { customer_fields: null })).statusCode, 200)
  const b3 = spec()
  t.match(await ingestCall(app, db, tokenB, b3), { organization_id: id, customer: b3.endUser, via: 'end_user' })
})

// Last in the file: organization routes are deployment-wide, and change how default's token routes every later call.
t.test('a call routed by LiteLLM identity takes its customer from the mappings of the organization it is routed to', async (t) => {
  const { id, app, admin, apiA, apiB, db } = await setup(t)
  const team = uid('team-routed')
  await apiA.post('/api/customer-mappings', { identity: 'team', value: team, customer_id: 'cus-of-default' })
  await apiB.post('/api/customer-mappings', { identity: 'team', value: team, customer_id: 'cus-of-b' })
  t.equal((await admin.post('/api/organization-routes', { identity: 'team', value: team, organization_id: id })).statusCode, 201)
  t.match(await ingestCall(app, db, TOKEN_A, { team }), { organization_id: id, customer: 'cus-of-b', via: 'mapping:team' })

  // A call no route claims waits without a customer; the route that later claims it gives it B's.
  const org = uid('litellm-org')
  const stray = uid('team-stray')
  await apiA.post('/api/customer-mappings', { identity: 'team', value: stray, customer_id: 'cus-of-default' })
  await apiB.post('/api/customer-mappings', { identity: 'team', value: stray, customer_id: 'cus-stray-b' })
  const payload = standardLoggingPayload(simulateCall({ team: stray, org }))
  t.equal((await postGeneric(app, [payload], { authorization: `Bearer ${TOKEN_A}` })).statusCode, 202)
  t.match(await storedCall(db, String(payload.litellm_call_id)), { organization_id: 'unrouted', customer: '(unmapped)', status: 'unmapped' })
  const routed = await admin.post('/api/organization-routes', { identity: 'org', value: org, organization_id: id })
  t.equal(routed.json().rerouted_events, 1)
  t.match(await storedCall(db, String(payload.litellm_call_id)), { organization_id: id, customer: 'cus-stray-b', status: 'pending', via: 'mapping:team' })
})

t.test('a routed call that its organization cannot bill yet waits there, saying so, until a mapping there names its customer', async (t) => {
  const { id, app, admin, apiB, db } = await setup(t, { LITELLM_MAPPED_CUSTOMERS_ONLY: 'true' })
  const org = uid('litellm-org')
  const team = uid('team-later')
  const payload = standardLoggingPayload(simulateCall({ team, org }))
  t.equal((await postGeneric(app, [payload], { authorization: `Bearer ${TOKEN_A}` })).statusCode, 202)
  const requestId = String(payload.litellm_call_id)
  t.match(await storedCall(db, requestId), { organization_id: 'unrouted', status: 'unmapped' })

  t.equal((await admin.post('/api/organization-routes', { identity: 'org', value: org, organization_id: id })).json().rerouted_events, 1)
  t.match(await storedCall(db, requestId), { organization_id: id, customer: '(unmapped)', status: 'unmapped' })
  const [waiting] = await storedEvents(db, 'request_id = $1', [requestId])
  t.same(waiting.last_error, { kind: 'unmapped', message: `routed to organization "${id}" by LiteLLM org "${org}": waiting for a customer mapping there` })

  t.equal((await apiB.post('/api/customer-mappings', { identity: 'team', value: team, customer_id: 'cus-later' })).json().released_events, 1)
  t.match(await storedCall(db, requestId), { organization_id: id, customer: 'cus-later', status: 'pending', via: 'mapping:team' })
})
