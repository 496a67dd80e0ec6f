import { randomBytes } from 'node:crypto'
import t from 'tap'
import { build, sqlClient } from '../../../helpers/app.js'
import { simulator } from '../../../helpers/lago.js'

// fastify.organizations and fastify.lagoClients, on a real database and two Lago simulators.
const quiet = { BOOTSTRAP_ON_START: 'false', FORWARDER_ENABLED: 'false' }

t.test('an organization keeps its Lago key encrypted, gets its own client, and a rotated key rebuilds it', async (t) => {
  const simA = await simulator(t, { apiKey: 'key-of-a' })
  const simB = await simulator(t, { apiKey: 'key-of-b' })
  const app = await build(t, { ...quiet, LAGO_API_URL: simA.url, LAGO_API_KEY: 'key-of-a', ORGANIZATION_SECRETS_KEY: randomBytes(32).toString('base64') })
  const db = await sqlClient(t)

  const changes: string[] = []
  app.organizations.on('changed', (id) => changes.push(id))
  const created = await app.organizations.create({ id: 'beta', name: 'Beta', lagoApiUrl: simB.url, lagoApiKey: 'key-of-b', lagoOrganizationId: 'lago-org-b' })
  t.match(created, { id: 'beta', name: 'Beta', status: 'active', lagoApiUrl: simB.url, hasLagoApiKey: true, metricCode: null })
  t.notOk(JSON.stringify(created).includes('key-of-b'), 'the key is not part of the organization')
  t.same(changes, ['beta'])

  const stored = (await db.query('SELECT lago_api_key_encrypted FROM organizations WHERE id = $1', ['beta'])).rows[0].lago_api_key_encrypted as string
  t.match(stored, /^v1\./)
  t.notOk(stored.includes('key-of-b'), 'stored encrypted')
  t.same(await app.organizations.lagoCredentials('beta'), { apiUrl: simB.url, apiKey: 'key-of-b' })
  t.same(await app.organizations.lagoCredentials('default'), { apiUrl: simA.url, apiKey: 'key-of-a' }, 'default from the environment')
  t.equal((await app.organizations.byLagoOrganizationId('lago-org-b'))?.id, 'beta')
  t.equal(await app.organizations.byLagoOrganizationId('nope'), null)
  t.same((await app.organizations.list()).map((o) => o.id), ['beta', 'default'])
  t.match(await app.organizations.settings('beta'), { lagoApiUrl: simB.url, metricCode: 'ai_usage', planCode: 'ai_usage_plan', autoProvisionCustomers: true })

  // Each organization's client reaches its own Lago with its own key.
  t.equal(await app.lagoClients.for('default'), app.lago, 'default is fastify.lago')
  const b = await app.lagoClients.for('beta')
  t.equal(await app.lagoClients.for('beta'), b, 'cached')
  await b.upsertCustomer({ external_id: 'only-in-b' })
  t.equal((await b.getCustomer('only-in-b')).external_id, 'only-in-b')
  t.match(await app.lago.getCustomer('only-in-b').catch((err: unknown) => err), { name: 'LagoApiError', status: 404 }, 'A\'s Lago does not have it')

  // A rotated key: a new client with the new key; the old one is closed.
  simB.settings.apiKey = 'key-of-b-2'
  t.match(await b.getCustomer('only-in-b').catch((err: unknown) => err), { name: 'LagoApiError', status: 401 }, 'the old key is refused')
  await app.organizations.rotateLagoKey('beta', 'key-of-b-2')
  t.same(changes, ['beta', 'beta'])
  const b2 = await app.lagoClients.for('beta')
  t.not(b2, b, 'rebuilt')
  t.equal((await b2.getCustomer('only-in-b')).external_id, 'only-in-b')

  await t.rejects(app.organizations.create({ id: 'beta', name: 'Again' }), { code: 'ORGANIZATION_EXISTS', statusCode: 409 })
  await t.rejects(app.lagoClients.for('missing'), { code: 'ORGANIZATION_NOT_FOUND', statusCode: 404 })
  const disabled = await app.organizations.update('beta', { status: 'disabled', planCode: 'pro' })
  t.match(disabled, { status: 'disabled', planCode: 'pro' })
  t.equal((await app.organizations.settings('beta')).planCode, 'pro')
})

t.test('without ORGANIZATION_SECRETS_KEY a Lago key cannot be stored, and a stored one cannot be read', async (t) => {
  const key = randomBytes(32).toString('base64')
  const withKey = await build(t, { ...quiet, ORGANIZATION_SECRETS_KEY: key })
  await withKey.organizations.create({ id: 'gamma', name: 'Gamma', lagoApiKey: 'key-of-gamma' })
  await withKey.close()

  const app = await build(t, quiet)
  await t.rejects(app.organizations.create({ id: 'delta', name: 'Delta', lagoApiKey: 'k' }), { code: 'ORGANIZATION_SECRETS_NOT_CONFIGURED', statusCode: 503 })
  t.equal(await app.organizations.get('delta'), null, 'nothing stored')
  await t.rejects(app.organizations.lagoCredentials('gamma'), { code: 'ORGANIZATION_SECRETS_NOT_CONFIGURED' })
  t.ok(await app.organizations.create({ id: 'epsilon', name: 'No key yet' }), 'an organization without a key needs no secrets key')

  const wrongKey = await build(t, { ...quiet, ORGANIZATION_SECRETS_KEY: randomBytes(32).toString('base64') })
  await t.rejects(wrongKey.organizations.lagoCredentials('gamma'), { code: 'ORGANIZATION_SECRET_UNREADABLE', statusCode: 503 })
})

t.test('a change made on another replica reaches this one (refresh)', async (t) => {
  const key = randomBytes(32).toString('base64')
  const one = await build(t, { ...quiet, ORGANIZATION_SECRETS_KEY: key })
  const two = await build(t, { ...quiet, ORGANIZATION_SECRETS_KEY: key })
  await one.organizations.create({ id: 'zeta', name: 'Zeta', lagoApiKey: 'z1' })
  const seen: string[] = []
  two.organizations.on('changed', (id) => seen.push(id))
  t.equal((await two.organizations.get('zeta'))?.name, 'Zeta', 'read through on a miss')
  await one.organizations.rotateLagoKey('zeta', 'z2')
  await two.organizations.refresh()
  t.same(seen, ['zeta'])
  t.equal((await two.organizations.lagoCredentials('zeta')).apiKey, 'z2')
})
