import { randomBytes } from 'node:crypto'
import t from 'tap'
import { build, seedEvent, sqlClient, uid } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'
import { until } from '../../helpers/forwarding.js'
import { simulator } from '../../helpers/lago.js'
import { createApiKey, listApiKeys, revokeApiKey } from '../../../plugins/app/api-keys/repository.js'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'

// Revoking an organization's ingestion tokens and API keys through the admin API, and listing them without secrets.
const ADMIN = 'admin-key-' + randomBytes(6).toString('hex')
const KEY_A = 'service-key-a-' + randomBytes(6).toString('hex')
const TOKEN_A = 'ingest-token-a-' + randomBytes(6).toString('hex')
const SECRETS_KEY = randomBytes(32).toString('base64')

type Test = Parameters<typeof build>[0]
type App = Awaited<ReturnType<typeof build>>

async function setup (t: Test, env: Record<string, string> = {}) {
  const id = `cred-${randomBytes(3).toString('hex')}`
  const simA = await simulator(t, { apiKey: 'lago-key-a' })
  const simB = await simulator(t, { apiKey: 'lago-key-b' })
  const config = {
    LAGO_API_URL: simA.url,
    LAGO_API_KEY: 'lago-key-a',
    API_KEYS: KEY_A,
    ADMIN_API_KEYS: ADMIN,
    WEBHOOK_TOKENS: TOKEN_A,
    ORGANIZATION_SECRETS_KEY: SECRETS_KEY,
    FORWARDER_ENABLED: 'false',
    BOOTSTRAP_ON_START: 'false',
    ...env
  }
  const app = await build(t, config)
  const admin = apiClient(app, ADMIN)
  const created = await admin.post('/api/organizations', { id, name: 'Beta Ltd', lago_api_url: simB.url, lago_api_key: 'lago-key-b' })
  if (created.statusCode !== 201) throw new Error(created.body)
  const { ingestion_token: tokenB, api_key: keyB } = created.json()
  return { id, app, admin, config, tokenB: tokenB as string, keyB: keyB as string, db: await sqlClient(t) }
}

const ingestWith = async (app: App, token: string, requestId = uid('req')) => await app.inject({
  method: 'POST', url: '/webhooks/litellm', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: seedEvent({ request_id: requestId })
})

t.test('ingestion tokens: listed without the tokens, revoked one by one, a revoked one refused at once', async (t) => {
  const { id, app, admin, tokenB } = await setup(t)
  const issued = await admin.post(`/api/organizations/${id}/ingestion-tokens`)
  t.equal(issued.statusCode, 201)
  const { ingestion_token: token2, id: token2Id } = issued.json()
  t.type(token2Id, 'number', 'the issued token says its id')

  const list = await admin.get(`/api/organizations/${id}/ingestion-tokens`)
  t.equal(list.statusCode, 200)
  const tokens = list.json().ingestion_tokens as Array<{ id: number, prefix: string, revoked_at: string | null }>
  t.same(tokens.map((x) => [x.prefix, x.revoked_at]), [[tokenB.slice(0, 10), null], [token2.slice(0, 10), null]], 'both, by prefix, live')
  t.equal(tokens[1].id, token2Id)
  t.notOk(list.body.includes(tokenB) || list.body.includes(token2), 'never the tokens themselves')

  // Revoke the first: refused from the next request; the second goes on.
  const revoked = await admin.post(`/api/organizations/${id}/ingestion-tokens/${tokens[0].id}/revoke`)
  t.equal(revoked.statusCode, 200, revoked.body)
  t.match(revoked.json().ingestion_token, { id: tokens[0].id, prefix: tokenB.slice(0, 10), revoked_at: String })
  const refused = await ingestWith(app, tokenB)
  t.equal(refused.statusCode, 401)
  t.match(refused.json(), { code: 'unauthorized', message: /revoked/ })
  t.equal((await ingestWith(app, token2)).statusCode, 202, 'its other token still works')
  t.equal((await ingestWith(app, TOKEN_A)).statusCode, 202, 'the other organization is untouched')

  // Again: nothing changes (the first revocation time stays).
  const again = await admin.post(`/api/organizations/${id}/ingestion-tokens/${tokens[0].id}/revoke`)
  t.equal(again.statusCode, 200)
  t.equal(again.json().ingestion_token.revoked_at, revoked.json().ingestion_token.revoked_at)
  t.match((await admin.get(`/api/organizations/${id}/ingestion-tokens`)).json().ingestion_tokens, [{ revoked_at: String }, { revoked_at: null }])

  // Errors: another organization's token, an unknown id, a bad id, an unknown organization, a service key.
  t.match((await admin.post(`/api/organizations/default/ingestion-tokens/${token2Id}/revoke`)).json(), { statusCode: 404, code: 'ingestion_token_not_found' })
  t.equal((await ingestWith(app, token2)).statusCode, 202, 'not revoked through another organization')
  t.match((await admin.post(`/api/organizations/${id}/ingestion-tokens/999999999/revoke`)).json(), { statusCode: 404, code: 'ingestion_token_not_found' })
  t.match((await admin.post(`/api/organizations/${id}/ingestion-tokens/abc/revoke`)).json(), { statusCode: 400, code: 'validation_error' })
  t.match((await admin.get('/api/organizations/nope/ingestion-tokens')).json(), { statusCode: 404, code: 'organization_not_found' })
  t.match((await apiClient(app, KEY_A).post(`/api/organizations/${id}/ingestion-tokens/${token2Id}/revoke`)).json(), { statusCode: 403, code: 'admin_required' })
  t.match((await apiClient(app, KEY_A).get(`/api/organizations/${id}/ingestion-tokens`)).json(), { statusCode: 403, code: 'admin_required' })
})

t.test('a revoked ingestion token is refused even where ingestion is open, never stored under default', async (t) => {
  const { id, app, admin, tokenB, db } = await setup(t, { WEBHOOK_TOKENS: '', WEBHOOK_AUTH: 'none' })
  const [token] = (await admin.get(`/api/organizations/${id}/ingestion-tokens`)).json().ingestion_tokens
  t.equal((await admin.post(`/api/organizations/${id}/ingestion-tokens/${token.id}/revoke`)).statusCode, 200)
  const requestId = uid('revoked-open')
  t.equal((await ingestWith(app, tokenB, requestId)).statusCode, 401)
  t.same((await db.query('SELECT organization_id FROM litellm_usage_events WHERE request_id = $1', [requestId])).rows, [], 'stored nowhere')
  t.equal((await ingestWith(app, 'not-a-token')).statusCode, 202, 'open ingestion still takes other callers')
})

t.test('a token revoked through one instance is refused by another within the refresh interval', async (t) => {
  const { id, app, admin, config, tokenB } = await setup(t)
  const replica = await build(t, config)
  t.equal((await ingestWith(replica, tokenB)).statusCode, 202, 'the replica knows the token')
  const [token] = (await admin.get(`/api/organizations/${id}/ingestion-tokens`)).json().ingestion_tokens
  t.equal((await admin.post(`/api/organizations/${id}/ingestion-tokens/${token.id}/revoke`)).statusCode, 200)
  t.equal((await ingestWith(app, tokenB)).statusCode, 401, 'at once on the instance that revoked it')
  await until(async () => (await ingestWith(replica, tokenB)).statusCode === 401, 'the replica to refuse the revoked token', 15_000)
  t.pass('refused by the replica')
})

t.test('API keys: listed without the keys, revoked one by one, refused from the next request on every instance', async (t) => {
  const { id, app, admin, config, keyB } = await setup(t)
  const replica = await build(t, config)
  const issued = await admin.post(`/api/organizations/${id}/api-keys`, { name: 'ops' })
  t.equal(issued.statusCode, 201)
  const { api_key: key2, id: key2Id } = issued.json()
  t.equal((await apiClient(app, keyB).get('/api/customer-mappings')).statusCode, 200)

  const list = await admin.get(`/api/organizations/${id}/api-keys`)
  t.equal(list.statusCode, 200)
  const keys = list.json().api_keys as Array<{ id: number, name: string, prefix: string, revoked_at: string | null }>
  t.same(keys.map((k) => [k.prefix, k.revoked_at]), [[keyB.slice(0, 10), null], [key2.slice(0, 10), null]])
  t.equal(keys[1].name, 'ops')
  t.equal(keys[1].id, key2Id)
  t.notOk(list.body.includes(keyB) || list.body.includes(key2), 'never the keys themselves')
  t.same((await admin.get('/api/organizations/default/api-keys')).json().api_keys.filter((k: { id: number }) => keys.some((x) => x.id === k.id)), [], 'not listed under another organization')

  const revoked = await admin.post(`/api/organizations/${id}/api-keys/${keys[0].id}/revoke`)
  t.equal(revoked.statusCode, 200, revoked.body)
  t.match(revoked.json().api_key, { id: keys[0].id, revoked_at: String })
  for (const instance of [app, replica]) {
    t.match((await apiClient(instance, keyB).get('/api/customer-mappings')).json(), { statusCode: 401, code: 'unauthorized' }, 'refused at once on every instance')
    t.equal((await apiClient(instance, key2).get('/api/customer-mappings')).statusCode, 200, 'its other key still works')
  }
  t.match((await admin.post(`/api/organizations/default/api-keys/${key2Id}/revoke`)).json(), { statusCode: 404, code: 'api_key_not_found' })
  t.equal((await apiClient(app, key2).get('/api/customer-mappings')).statusCode, 200, 'not revoked through another organization')
  t.match((await admin.post(`/api/organizations/${id}/api-keys/0/revoke`)).json(), { statusCode: 400, code: 'validation_error' })
  t.match((await apiClient(app, key2).post(`/api/organizations/${id}/api-keys/${key2Id}/revoke`)).json(), { statusCode: 403, code: 'admin_required' }, 'a key cannot revoke, not even itself')

  // Names are unique per organization: `npm run keys -- revoke ops` (default's keys) leaves B's "ops" alone.
  const { key: defaultOps } = await createApiKey(app.db, 'ops')
  t.match(await revokeApiKey(app.db, DEFAULT_ORGANIZATION_ID, 'ops'), { name: 'ops' })
  t.equal((await apiClient(app, defaultOps).get('/api/customer-mappings')).statusCode, 401, 'default\'s "ops" is revoked')
  t.equal((await apiClient(app, key2).get('/api/customer-mappings')).statusCode, 200, 'B\'s "ops" is not')
  t.notOk((await listApiKeys(app.db, DEFAULT_ORGANIZATION_ID)).some((k) => k.id === key2Id), 'nor listed with default\'s')
})
