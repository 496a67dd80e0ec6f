import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { LagoSimulator } from '../../../scripts/lago-simulator/index.js'
import { build, sqlClient, uid } from '../../helpers/app.js'
import { ADMIN_KEY, until } from '../../helpers/forwarding.js'
import { simulator } from '../../helpers/lago.js'
import { SECRETS_KEY, organizationId } from '../../helpers/organizations.js'

// POST /webhooks/lago with two organizations, each in its own Lago with its own HMAC key and RSA key: a delivery is
// routed by Lago's organization_id in its body and verified with that organization's key only.

const HMAC_A = 'hmac-key-of-a'
const HMAC_B = 'hmac-key-of-b'

const simA = await simulator(t, { apiKey: 'key-of-a', webhooks: { hmacKey: HMAC_A, retryDelaysMs: [10, 10] } })
const simB = await simulator(t, { apiKey: 'key-of-b', webhooks: { hmacKey: HMAC_B, retryDelaysMs: [10, 10] } })
const db = await sqlClient(t)

/** The service with PUBLIC_URL: bootstrap registers a webhook endpoint in each organization's Lago. */
async function twoOrganizations (t: { teardown: (fn: () => unknown) => void }): Promise<{ app: FastifyInstance, b: string }> {
  const app = await build(t, {
    LAGO_API_URL: simA.url,
    LAGO_API_KEY: simA.apiKey,
    LAGO_WEBHOOK_HMAC_KEY: HMAC_A,
    API_KEYS: ADMIN_KEY,
    ORGANIZATION_SECRETS_KEY: SECRETS_KEY,
    PUBLIC_URL: 'http://127.0.0.1:9',
    FORWARDER_ENABLED: 'false',
    BILLING_AUDIT_INTERVAL_MS: '0'
  })
  const b = organizationId()
  await app.organizations.create({ id: b, name: 'B', lagoApiUrl: simB.url, lagoApiKey: simB.apiKey, lagoWebhookHmacKey: HMAC_B })
  await until(() => simB.webhooks.endpoints.length >= 1 && simA.webhooks.endpoints.length >= 1, 'bootstrap to register both webhook endpoints')
  return { app, b }
}

const envelope = (sim: LagoSimulator, customer: string, organization = sim.webhooks.organizationId): string => JSON.stringify({
  webhook_type: 'customer.created',
  object_type: 'customer',
  organization_id: organization,
  customer: { lago_id: randomUUID(), external_id: customer, name: 'Acme', email: null }
})
const deliver = async (app: FastifyInstance, body: string, headers: Record<string, string>) =>
  await app.inject({ method: 'POST', url: '/webhooks/lago', headers: { 'content-type': 'application/json', 'x-lago-unique-key': randomUUID(), ...headers }, payload: body })
const signedBy = async (sim: LagoSimulator, algo: 'jwt' | 'hmac', body: string) =>
  ({ 'x-lago-signature': await sim.webhooks.sign(algo, body), 'x-lago-signature-algorithm': algo })
const storedFor = async (customer: string): Promise<Array<{ organization_id: string, lago_organization_id: string }>> =>
  (await db.query('SELECT organization_id, lago_organization_id FROM lago_webhooks WHERE customer_external_id = $1', [customer])).rows

t.test('each organization\'s deliveries are routed to it, verified with its key, and acted on within it', async (t) => {
  const { app, b } = await twoOrganizations(t)
  for (const algo of ['hmac', 'jwt'] as const) {
    const customerB = uid('cus-b')
    const bodyB = envelope(simB, customerB)
    const res = await deliver(app, bodyB, await signedBy(simB, algo, bodyB))
    t.equal(res.statusCode, 200, `B's ${algo} delivery accepted`)
    t.same(await storedFor(customerB), [{ organization_id: b, lago_organization_id: simB.webhooks.organizationId }], 'stored as B\'s')

    const customerA = uid('cus-a')
    const bodyA = envelope(simA, customerA)
    t.equal((await deliver(app, bodyA, await signedBy(simA, algo, bodyA))).statusCode, 200, `A's ${algo} delivery accepted`)
    t.same(await storedFor(customerA), [{ organization_id: 'default', lago_organization_id: simA.webhooks.organizationId }], 'stored as default\'s')

    await app.lagoWebhooks.drain()
    const customers = (await db.query('SELECT organization_id, external_id FROM customers WHERE external_id = ANY($1) ORDER BY organization_id', [[customerA, customerB]])).rows
    t.same(customers, [{ organization_id: 'default', external_id: customerA }, { organization_id: b, external_id: customerB }], 'each customer recorded in its own organization')
  }
  t.equal((await app.organizations.get(b))?.lagoOrganizationId, simB.webhooks.organizationId, 'B\'s Lago organization id was learned from B\'s Lago and stored')
})

t.test('a delivery naming B but signed with A\'s keys, or naming an organization that is none of ours, is refused and stored nowhere', async (t) => {
  const { app } = await twoOrganizations(t)
  const before = (await db.query('SELECT count(*)::int AS n FROM lago_webhooks')).rows[0].n

  const customer = uid('forged')
  const claimsB = envelope(simB, customer)
  t.equal((await deliver(app, claimsB, await signedBy(simA, 'hmac', claimsB))).statusCode, 401, 'B\'s organization, A\'s HMAC key')
  t.equal((await deliver(app, claimsB, await signedBy(simA, 'jwt', claimsB))).statusCode, 401, 'B\'s organization, A\'s Lago\'s RSA key')

  const unknown = envelope(simB, customer, randomUUID())
  const res = await deliver(app, unknown, await signedBy(simB, 'hmac', unknown))
  t.equal(res.statusCode, 401, 'an organization that is none of ours')
  t.equal(res.json().code, 'invalid_signature')
  t.equal((await db.query('SELECT count(*)::int AS n FROM lago_webhooks')).rows[0].n, before, 'nothing stored')
})
