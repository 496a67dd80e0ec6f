import { randomBytes } from 'node:crypto'
import t from 'tap'
import { build, seedEvent, sqlClient, uid } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'
import { simulator } from '../../helpers/lago.js'
import { serviceWithSecondOrganization } from '../../helpers/organizations.js'
import { postGeneric } from '../../helpers/litellm.js'
import { simulateCall, standardLoggingPayload } from '../../../scripts/litellm-simulator/index.js'

// Two organizations, each with its own Lago simulator and key: `default` (LAGO_API_URL/LAGO_API_KEY, API_KEYS,
// WEBHOOK_TOKENS) and `beta`, created through the admin API.
const ADMIN = 'admin-key-' + randomBytes(6).toString('hex')
const KEY_A = 'service-key-a-' + randomBytes(6).toString('hex')
const TOKEN_A = 'ingest-token-a-' + randomBytes(6).toString('hex')
const ALERT_SECRET = 'alerts-secret-' + randomBytes(8).toString('hex')

/** The tests share this file's database: each names its second organization afresh. */
async function setup (t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const id = `beta-${randomBytes(3).toString('hex')}`
  const made = await serviceWithSecondOrganization(t, { admin: ADMIN, keyA: KEY_A, tokenA: TOKEN_A }, id, { env })
  return { id, ...made, organization: made.created.json().organization }
}

const ingestWith = async (app: Awaited<ReturnType<typeof build>>, token: string, event: Record<string, unknown>) => await app.inject({
  method: 'POST', url: '/webhooks/litellm', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: event
})

t.test('the admin API creates an organization, answering its ingestion token and API key once, never its Lago key', async (t) => {
  const { id, app, simB, admin, organization, tokenB, keyB, created } = await setup(t)
  t.match(organization, { id, name: 'Beta Ltd', status: 'active', lago_api_url: simB.url, lago_api_key_set: true, metric_code: null })
  t.match(tokenB, /^lit_/)
  t.match(keyB, /^lai_/)
  t.notOk(created.body.includes('lago-key-b'), 'the Lago key is not in the answer')

  const list = await admin.get('/api/organizations')
  t.equal(list.statusCode, 200)
  t.same(list.json().organizations.map((o: { id: string }) => o.id), [id, 'default'])
  t.notOk(list.body.includes('lago-key-b'))
  const one = await admin.get(`/api/organizations/${id}`)
  t.same(one.json().organization, organization)
  t.equal((await admin.get('/api/organizations/nope')).json().code, 'organization_not_found')

  const db = await sqlClient(t)
  const stored = (await db.query('SELECT * FROM organizations WHERE id = $1', [id])).rows[0]
  t.notOk(JSON.stringify(stored).includes('lago-key-b'), 'encrypted at rest')
  const tokens = (await db.query('SELECT token_hash FROM ingestion_tokens WHERE organization_id = $1', [id])).rows
  t.equal(tokens.length, 1)
  t.notOk(JSON.stringify(tokens).includes(tokenB), 'only the token\'s hash is stored')

  // Errors: taken id, bad slug, missing key, a non-admin key.
  t.match((await admin.post('/api/organizations', { id, name: 'x', lago_api_url: simB.url, lago_api_key: 'k' })).json(), { statusCode: 409, code: 'organization_exists' })
  t.match((await admin.post('/api/organizations', { id: 'Not A Slug', name: 'x', lago_api_key: 'k' })).json(), { statusCode: 400, code: 'validation_error' })
  t.match((await admin.post('/api/organizations', { id: 'gamma', name: 'x' })).json(), { statusCode: 400, code: 'validation_error' })
  for (const key of [KEY_A, keyB]) {
    const refused = await apiClient(app, key).get('/api/organizations')
    t.match(refused.json(), { statusCode: 403, code: 'admin_required' }, 'a service key cannot manage organizations')
  }
  t.equal((await apiClient(app, null).get('/api/organizations')).statusCode, 401)
})

t.test('without ORGANIZATION_SECRETS_KEY an organization with a Lago key cannot be created, and nothing is stored', async (t) => {
  const simA = await simulator(t, { apiKey: 'lago-key-a' })
  const app = await build(t, { LAGO_API_URL: simA.url, LAGO_API_KEY: 'lago-key-a', ADMIN_API_KEYS: ADMIN, FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  const res = await apiClient(app, ADMIN).post('/api/organizations', { id: 'nokey', name: 'No key', lago_api_key: 'secret-lago-key' })
  t.match(res.json(), { statusCode: 503, code: 'organization_secrets_not_configured', message: /ORGANIZATION_SECRETS_KEY/ })
  t.notOk(res.body.includes('secret-lago-key'))
  t.equal((await apiClient(app, ADMIN).get('/api/organizations/nokey')).statusCode, 404)
})

t.test('each organization\'s token stores under it; the same request_id in two organizations is two events', async (t) => {
  const { id, app, tokenB } = await setup(t)
  const db = await sqlClient(t)
  const requestId = uid('shared')
  const a = await ingestWith(app, TOKEN_A, seedEvent({ request_id: requestId, customer_id: 'cus-a' }))
  const b = await ingestWith(app, tokenB, seedEvent({ request_id: requestId, customer_id: 'cus-b', cost_usd: 2.5 }))
  t.equal(a.statusCode, 202, a.body)
  t.equal(b.statusCode, 202, 'not a conflict: another organization')
  t.not(a.json().id, b.json().id)
  const again = await ingestWith(app, tokenB, seedEvent({ request_id: requestId, customer_id: 'cus-b', cost_usd: 2.5 }))
  t.match(again.json(), { status: 'duplicate', id: b.json().id }, 'a resend within the organization is a duplicate')
  const rows = (await db.query('SELECT organization_id, customer_external_id, cost_usd::text AS cost FROM litellm_usage_events WHERE request_id = $1 ORDER BY organization_id', [requestId])).rows
  t.same(rows, [{ organization_id: id, customer_external_id: 'cus-b', cost: '2.5' }, { organization_id: 'default', customer_external_id: 'cus-a', cost: '0.00375' }])

  // The batch and the generic_api formats route the same way.
  const batch = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { authorization: `Bearer ${tokenB}` }, payload: [seedEvent({ customer_id: 'cus-b' }), seedEvent({ customer_id: 'cus-b' })] })
  t.equal(batch.statusCode, 202, batch.body)
  t.equal((await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE organization_id = $1', [id])).rows[0].n, 3)
  t.equal((await ingestWith(app, 'lit_not-a-token', seedEvent())).statusCode, 401, 'an unknown token is refused')
})

t.test('an organization\'s API key sees only its organization: another\'s customer, usage and invoices are 404', async (t) => {
  const { id, app, keyB, tokenB, admin } = await setup(t)
  const apiA = apiClient(app, KEY_A)
  const apiB = apiClient(app, keyB)
  t.equal((await apiA.post('/api/customers', { external_id: 'only-a', name: 'A customer' })).statusCode, 200)
  t.equal((await apiB.post('/api/customers', { external_id: 'only-b', name: 'B customer' })).statusCode, 200)

  t.equal((await apiA.get('/api/customers/only-a')).statusCode, 200)
  t.equal((await apiB.get('/api/customers/only-b')).statusCode, 200)
  t.match((await apiB.get('/api/customers/only-a')).json(), { statusCode: 404, code: 'customer_not_found' }, 'B cannot read A\'s customer')
  t.match((await apiA.get('/api/customers/only-b')).json(), { statusCode: 404, code: 'customer_not_found' }, 'A cannot read B\'s customer')
  t.equal((await apiB.get('/api/customers/only-a/invoices')).statusCode, 404)
  const listB = (await apiB.get('/api/customers')).json()
  t.same(listB.customers.map((c: { external_id: string }) => c.external_id), ['only-b'], 'B lists only its own')

  // Usage: stored events, per organization.
  await ingestWith(app, TOKEN_A, seedEvent({ customer_id: 'only-a', cost_usd: 1.25, timestamp: Math.floor(Date.now() / 1000) }))
  await ingestWith(app, tokenB, seedEvent({ customer_id: 'only-b', cost_usd: 3, timestamp: Math.floor(Date.now() / 1000) }))
  const usageA = await apiA.get('/api/customers/only-a/usage')
  t.equal(usageA.json().totals.cost_usd, '1.25')
  t.match((await apiB.get('/api/customers/only-a/usage')).json(), { statusCode: 404, code: 'customer_not_found' }, 'B cannot read A\'s usage')
  t.equal((await apiB.get('/api/customers/only-b/usage')).json().totals.cost_usd, '3')

  // The admin key acts on the organization it names (X-Organization-Id), default otherwise.
  t.equal((await admin.get('/api/customers/only-b', { 'x-organization-id': id })).statusCode, 200)
  t.equal((await admin.get('/api/customers/only-b')).statusCode, 404)
  t.match((await admin.get('/api/customers/only-b', { 'x-organization-id': 'nope' })).json(), { statusCode: 404, code: 'organization_not_found' })
})

t.test('rotating the Lago key rebuilds the organization\'s client; disabling stops its token and key', async (t) => {
  const { id, app, simB, admin, keyB, tokenB } = await setup(t)
  const apiB = apiClient(app, keyB)
  t.equal((await apiB.post('/api/customers', { external_id: 'cus-r' })).statusCode, 200)

  // Lago's key changes: the old one is refused by Lago until the organization gets the new one.
  simB.settings.apiKey = 'lago-key-b-2'
  t.match((await apiB.get('/api/customers/cus-r')).json(), { code: 'lago_error' })
  const rotated = await admin.put(`/api/organizations/${id}/lago-key`, { lago_api_key: 'lago-key-b-2' })
  t.equal(rotated.statusCode, 200, rotated.body)
  t.notOk(rotated.body.includes('lago-key-b-2'))
  t.equal((await apiB.get('/api/customers/cus-r')).statusCode, 200, 'the new key is in use')

  // Updates: defaults, name.
  const patched = await admin.patch(`/api/organizations/${id}`, { name: 'Beta GmbH', plan_code: 'pro', customer_fields: ['team', 'user'] })
  t.match(patched.json().organization, { name: 'Beta GmbH', plan_code: 'pro', customer_fields: ['team', 'user'] })

  // New credentials, shown once, work at once.
  const token2 = (await admin.post(`/api/organizations/${id}/ingestion-tokens`)).json().ingestion_token
  t.equal((await ingestWith(app, token2, seedEvent({ customer_id: 'cus-r' }))).statusCode, 202)
  const key2 = (await admin.post(`/api/organizations/${id}/api-keys`, { name: 'ops' })).json().api_key
  t.equal((await apiClient(app, key2).get('/api/customers/cus-r')).statusCode, 200)

  const disabled = await admin.post(`/api/organizations/${id}/disable`)
  t.equal(disabled.json().organization.status, 'disabled')
  t.equal((await ingestWith(app, tokenB, seedEvent())).statusCode, 401, 'its ingestion token is refused')
  t.equal((await ingestWith(app, token2, seedEvent())).statusCode, 401)
  t.equal((await apiB.get('/api/customers/cus-r')).statusCode, 401, 'its API key is refused')
  t.equal((await ingestWith(app, TOKEN_A, seedEvent())).statusCode, 202, 'the other organization goes on')
  const enabled = await admin.patch(`/api/organizations/${id}`, { status: 'active' })
  t.equal(enabled.json().organization.status, 'active')
  t.equal((await ingestWith(app, tokenB, seedEvent())).statusCode, 202)
})

t.test('with the ingestion webhooks open, a disabled organization\'s token is refused, never stored under default', async (t) => {
  const { id, app, admin, tokenB } = await setup(t, { WEBHOOK_TOKENS: '', WEBHOOK_AUTH: 'none' })
  const db = await sqlClient(t)
  const requestId = uid('disabled')
  t.equal((await admin.post(`/api/organizations/${id}/disable`)).statusCode, 200)
  const refused = await ingestWith(app, tokenB, seedEvent({ request_id: requestId }))
  t.equal(refused.statusCode, 401)
  t.match(refused.json(), { code: 'unauthorized', message: /disabled/ })
  t.same((await db.query('SELECT organization_id FROM litellm_usage_events WHERE request_id = $1', [requestId])).rows, [], 'stored nowhere')
  t.equal((await ingestWith(app, 'not-a-token', seedEvent())).statusCode, 202, 'the open default route still takes other callers')
})

t.test('every operator view answers for the caller\'s organization: B\'s key reads its own, never default\'s', async (t) => {
  const { app, keyB } = await setup(t, { LITELLM_ALERTS_SECRET: ALERT_SECRET })
  const apiB = apiClient(app, keyB)
  const apiA = apiClient(app, KEY_A)
  // A spend alert (LiteLLM's alerting webhook is the deployment's: recorded under default).
  const alerted = await app.inject({
    method: 'POST',
    url: `/webhooks/litellm/alerts/${ALERT_SECRET}`,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ event: 'spend_tracked', event_group: 'end_user', spend: 1.25, customer_id: 'ledger-cust', token: 'a'.repeat(64), event_message: 'Customer spend tracked' })
  })
  t.equal(alerted.statusCode, 200, alerted.body)
  const ofA = (await apiA.get('/api/spend-ledger')).json()
  t.same(ofA.customers.map((c: { customer_id: string, spend_usd: string }) => [c.customer_id, c.spend_usd]), [['ledger-cust', '1.25']], 'default\'s ledger has the alert')
  const ofB = await apiB.get('/api/spend-ledger')
  t.equal(ofB.statusCode, 200)
  t.same(ofB.json().customers, [], 'B\'s ledger is its own: empty')
  // The other views too (figures per organization: test/routes/api/dashboard-organizations.test.ts).
  for (const url of ['/webhooks/stats', '/api/usage', '/api/pipeline', '/api/problems', '/api/lago-webhooks', '/api/lago/status', '/api/customer-mappings']) {
    t.equal((await apiB.get(url)).statusCode, 200, `${url}: B's own view`)
  }
  t.equal((await apiB.post('/webhooks/retry', { all: true })).statusCode, 200, 'B retries its own events')
})

t.test('one shared token routed by LiteLLM team or org; a call no route claims is kept unmapped with the reason, then moved', async (t) => {
  const { id, app, admin } = await setup(t)
  const db = await sqlClient(t)
  const generic = async (team: string, org?: string) => await postGeneric(app, standardLoggingPayload(simulateCall({ team, org, endUser: `${team}-user` })), { authorization: `Bearer ${TOKEN_A}` })
  const before = uid('t-before')
  t.equal((await generic(before)).statusCode, 202)
  t.same((await db.query('SELECT organization_id, status FROM litellm_usage_events WHERE metadata->\'identities\'->>\'team\' = $1', [before])).rows,
    [{ organization_id: 'default', status: 'pending' }], 'no route configured: the single-organization setup, unchanged')

  const routedTeam = uid('t-beta')
  const route = await admin.post('/api/organization-routes', { identity: 'team', value: routedTeam, organization_id: id })
  t.equal(route.statusCode, 201, route.body)
  t.equal((await apiClient(app, KEY_A).post('/api/organization-routes', { identity: 'team', value: 'x', organization_id: id })).statusCode, 403)
  t.equal((await admin.post('/api/organization-routes', { identity: 'team', value: 'x', organization_id: 'nope' })).json().code, 'organization_not_found')

  t.equal((await generic(routedTeam)).statusCode, 202)
  const stray = uid('t-stray')
  const strayCall = standardLoggingPayload(simulateCall({ team: stray, org: 'litellm-org-9', endUser: `${stray}-user` }))
  t.equal((await postGeneric(app, strayCall, { authorization: `Bearer ${TOKEN_A}` })).statusCode, 202, 'accepted, never dropped')
  const rows = async (team: string) => (await db.query('SELECT organization_id, status, last_error FROM litellm_usage_events WHERE metadata->\'identities\'->>\'team\' = $1', [team])).rows
  t.match(await rows(routedTeam), [{ organization_id: id, status: 'pending' }], 'the route decides the organization')
  t.match(await rows(stray), [{ organization_id: 'unrouted', status: 'unmapped', last_error: { kind: 'unmapped', message: `no organization route for LiteLLM org "litellm-org-9" or team "${stray}"` } }])

  // A failed call of the same LiteLLM org: kept as usage that is not billed, waiting for its organization too.
  const strayFailed = uid('t-stray-failed')
  t.equal((await postGeneric(app, standardLoggingPayload(simulateCall({ team: strayFailed, org: 'litellm-org-9', failure: { errorClass: 'RateLimitError', errorCode: '429' } })), { authorization: `Bearer ${TOKEN_A}` })).statusCode, 202)
  t.match(await rows(strayFailed), [{ organization_id: 'unrouted', status: 'not_billable' }])

  // A route for the LiteLLM org moves the waiting calls to its organization, the failed one still not billed.
  const later = await admin.post('/api/organization-routes', { identity: 'org', value: 'litellm-org-9', organization_id: id })
  t.equal(later.json().rerouted_events, 2)
  t.match(await rows(stray), [{ organization_id: id, status: 'pending', last_error: null }])
  t.match(await rows(strayFailed), [{ organization_id: id, status: 'not_billable' }])
  // Its dedupe key moved with it: the same call delivered again is a resend in its new organization.
  t.same((await db.query(`SELECT k.organization_id FROM usage_event_keys k JOIN litellm_usage_events e ON e.id = k.event_id
    WHERE e.metadata->'identities'->>'team' = $1`, [stray])).rows, [{ organization_id: id }])
  await postGeneric(app, strayCall, { authorization: `Bearer ${TOKEN_A}` })
  t.equal((await rows(stray)).length, 1, 'stored once')
  t.match((await admin.get('/api/organization-routes')).json().routes, [{ identity: 'org', value: 'litellm-org-9', organization_id: id }, { identity: 'team', value: routedTeam, organization_id: id }])
  t.equal((await admin.get('/api/organizations/unrouted')).json().organization.status, 'disabled', 'the waiting room is never forwarded')
})
