import { createHmac, randomBytes } from 'node:crypto'
import t from 'tap'
import { build, seedEvent, sqlClient, uid } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'

// Standard Webhooks signing per organization: default signs with WEBHOOK_SECRET, an organization created through the
// admin API with its own webhook_secret; the secret that made the signature decides where the event is stored.
const ADMIN = 'admin-key-' + randomBytes(6).toString('hex')
const secret = () => { const key = randomBytes(32); return { key, text: `whsec_${key.toString('base64')}` } }
const DEFAULT_SECRET = secret()

function sign (body: string, key: Buffer, id = uid('msg')) {
  const timestamp = String(Math.floor(Date.now() / 1000))
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` }
}

type App = Awaited<ReturnType<typeof build>>
/** Posts one event signed with key; answers the response and the event's request_id. */
async function postSigned (app: App, key: Buffer) {
  const requestId = uid('req')
  const body = JSON.stringify(seedEvent({ request_id: requestId }))
  const res = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json', ...sign(body, key) }, payload: body })
  return { res, requestId }
}

async function setup (t: Parameters<typeof build>[0]) {
  const app = await build(t, {
    WEBHOOK_SECRET: DEFAULT_SECRET.text,
    ADMIN_API_KEYS: ADMIN,
    ORGANIZATION_SECRETS_KEY: randomBytes(32).toString('base64'),
    FORWARDER_ENABLED: 'false',
    BOOTSTRAP_ON_START: 'false'
  })
  const admin = apiClient(app, ADMIN)
  const db = await sqlClient(t)
  const storedUnder = async (requestId: string): Promise<string[]> =>
    (await db.query('SELECT organization_id FROM litellm_usage_events WHERE request_id = $1', [requestId])).rows.map((r: { organization_id: string }) => r.organization_id)
  return { app, admin, db, storedUnder }
}

t.test('a request signed with an organization\'s webhook secret is stored under it; default\'s under default; a wrong one nowhere', async (t) => {
  const { app, admin, db, storedUnder } = await setup(t)
  const id = `beta-${randomBytes(3).toString('hex')}`
  const beta = secret()
  const created = await admin.post('/api/organizations', { id, name: 'Beta Ltd', lago_api_key: 'lago-key-b', webhook_secret: beta.text })
  t.equal(created.statusCode, 201, created.body)
  t.equal(created.json().organization.webhook_secret_set, true)
  t.notOk(created.body.includes(beta.key.toString('base64')), 'the secret is not in the answer')
  t.notOk((await admin.get(`/api/organizations/${id}`)).body.includes(beta.key.toString('base64')))
  const row = (await db.query('SELECT * FROM organizations WHERE id = $1', [id])).rows[0]
  t.notOk(JSON.stringify(row).includes(beta.key.toString('base64')), 'encrypted at rest')
  t.ok(row.webhook_secret_encrypted, 'stored')

  const b = await postSigned(app, beta.key)
  t.equal(b.res.statusCode, 202, b.res.body)
  t.same(await storedUnder(b.requestId), [id], 'B\'s secret: stored under B')

  const d = await postSigned(app, DEFAULT_SECRET.key)
  t.equal(d.res.statusCode, 202, d.res.body)
  t.same(await storedUnder(d.requestId), ['default'], 'WEBHOOK_SECRET: stored under default')

  const wrong = await postSigned(app, randomBytes(32))
  t.match(wrong.res.json(), { statusCode: 401, code: 'unauthorized', message: /does not match/ })
  t.same(await storedUnder(wrong.requestId), [], 'nothing stored')

  // A Bearer-less request without signature headers is still refused before its body is read.
  const unsigned = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: seedEvent() })
  t.match(unsigned.json(), { statusCode: 401, message: /Standard Webhooks signature/ })
})

t.test('a secret set, replaced or removed by update routes from then on; a disabled organization\'s secret is refused', async (t) => {
  const { app, admin, storedUnder } = await setup(t)
  const id = `gamma-${randomBytes(3).toString('hex')}`
  t.equal((await admin.post('/api/organizations', { id, name: 'Gamma', lago_api_key: 'lago-key-c' })).json().organization.webhook_secret_set, false)
  const first = secret()
  const before = await postSigned(app, first.key)
  t.equal(before.res.statusCode, 401, 'not yet its secret')

  const set = await admin.patch(`/api/organizations/${id}`, { webhook_secret: first.text })
  t.equal(set.statusCode, 200, set.body)
  t.equal(set.json().organization.webhook_secret_set, true)
  const after = await postSigned(app, first.key)
  t.equal(after.res.statusCode, 202, after.res.body)
  t.same(await storedUnder(after.requestId), [id])

  const second = secret()
  t.equal((await admin.patch(`/api/organizations/${id}`, { webhook_secret: second.text })).statusCode, 200)
  t.equal((await postSigned(app, first.key)).res.statusCode, 401, 'the replaced secret no longer verifies')
  const rotated = await postSigned(app, second.key)
  t.equal(rotated.res.statusCode, 202)
  t.same(await storedUnder(rotated.requestId), [id])

  t.equal((await admin.patch(`/api/organizations/${id}`, { status: 'disabled' })).statusCode, 200)
  const disabled = await postSigned(app, second.key)
  t.match(disabled.res.json(), { statusCode: 401, code: 'unauthorized', message: new RegExp(`${id} is disabled`) })
  t.same(await storedUnder(disabled.requestId), [], 'nothing stored for a disabled organization')

  t.equal((await admin.patch(`/api/organizations/${id}`, { status: 'active' })).statusCode, 200)
  t.equal((await postSigned(app, second.key)).res.statusCode, 202, 'active again: accepted')

  const removed = await admin.patch(`/api/organizations/${id}`, { webhook_secret: null })
  t.equal(removed.json().organization.webhook_secret_set, false)
  t.equal((await postSigned(app, second.key)).res.statusCode, 401, 'removed: refused')

  t.match((await admin.patch(`/api/organizations/${id}`, { webhook_secret: 'not a secret!' })).json(), { statusCode: 400, code: 'validation_error' })
})

t.test('two organizations with the same secret: refused (either could be wrong), nothing stored', async (t) => {
  const { app, admin, storedUnder } = await setup(t)
  const id = `delta-${randomBytes(3).toString('hex')}`
  t.equal((await admin.post('/api/organizations', { id, name: 'Delta', lago_api_key: 'k', webhook_secret: DEFAULT_SECRET.text })).statusCode, 201)
  const shared = await postSigned(app, DEFAULT_SECRET.key)
  t.match(shared.res.json(), { statusCode: 401, message: /several organizations/ })
  t.same(await storedUnder(shared.requestId), [])
})
