// Lago's deliveries over HTTP from the simulator to the listening service (slow lane: servers on real ports).
import { createHmac, randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { sqlClient } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'
import { HMAC_KEY, buildWithLagoWebhooks, deliveredAndActedOn, subscribe } from '../../helpers/lago-webhooks.js'

const post = async (url: string, body: string, headers: Record<string, string>) => {
  const res = await request(`${url}/webhooks/lago`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  const text = await res.body.text()
  return { status: res.statusCode, json: () => JSON.parse(text) }
}

// Lago names its organization in every delivery; the service routes by it.
const envelope = (organizationId: string, type = 'alert.triggered', extra: Record<string, unknown> = {}): string => JSON.stringify({
  webhook_type: type,
  object_type: 'triggered_alert',
  organization_id: organizationId,
  triggered_alert: { lago_id: randomUUID(), external_customer_id: 'cus-alert', alert_code: 'budget', current_value: '120.0', ...extra }
})

t.test('jwt: Lago\'s deliveries are verified with its public key and stored once per unique key', async (t) => {
  const { app, sim, url } = await buildWithLagoWebhooks(t)
  const db = await sqlClient(t)
  t.equal(sim.webhooks.endpoints[0].webhook_url, `${url}/webhooks/lago`, 'bootstrap registered <PUBLIC_URL>/webhooks/lago')
  t.equal(sim.webhooks.endpoints[0].signature_algo, 'jwt', 'jwt without an HMAC key')

  const api = apiClient(app)
  await subscribe(app, 'cus-jwt')
  await deliveredAndActedOn(app, sim)
  const types = sim.webhooks.deliveries.map((d) => d.webhook_type)
  t.ok(types.includes('customer.created') && types.includes('subscription.started'), `Lago sent ${types.join(', ')}`)
  t.ok(sim.webhooks.deliveries.every((d) => d.status === 'succeeded' && d.attempts.length === 1), 'every delivery answered 200 at once')

  const { rows } = await db.query('SELECT unique_key, webhook_type, signature_algo, processed_at FROM lago_webhooks ORDER BY id')
  t.same(rows.map((r) => r.unique_key).sort(), sim.webhooks.deliveries.map((d) => d.unique_key).sort(), 'each delivery stored under its X-Lago-Unique-Key')
  t.ok(rows.every((r) => r.signature_algo === 'jwt' && r.processed_at !== null), 'verified as jwt and acted on')
  const customer = await db.query('SELECT subscription_external_id, subscription_lago_id, subscription_started_at FROM customers WHERE external_id = $1', ['cus-jwt'])
  t.equal(customer.rows[0].subscription_external_id, 'cus-jwt')
  t.ok(customer.rows[0].subscription_lago_id !== null && customer.rows[0].subscription_started_at !== null, 'subscription.started recorded the subscription\'s Lago id and start')

  const listed = await api.get('/api/lago-webhooks?type=subscription.started')
  t.equal(listed.statusCode, 200)
  t.equal(listed.json().webhooks.length, 1)
  t.equal(listed.json().webhooks[0].customer_external_id, 'cus-jwt')
  t.equal((await apiClient(app, null).get('/api/lago-webhooks')).statusCode, 401, 'the list needs an API key')

  // A retry of the same delivery (same unique key): 200, stored once.
  const body = envelope(sim.webhooks.organizationId)
  const headers = { 'x-lago-signature': await sim.webhooks.sign('jwt', body), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': randomUUID() }
  const first = await post(url, body, headers)
  const again = await post(url, body, headers)
  t.equal(first.status, 200)
  t.equal(first.json().status, 'stored')
  t.equal(again.status, 200)
  t.same(again.json(), { status: 'duplicate', id: first.json().id })
  const count = await db.query('SELECT count(*)::int AS n FROM lago_webhooks WHERE unique_key = $1', [headers['x-lago-unique-key']])
  t.equal(count.rows[0].n, 1, 'stored once')

  // Lago rotated its key: the first signature that fails fetches the key again, and verifies.
  const fetchesBefore = sim.requests.entries().filter((r) => r.path.endsWith('/webhooks/json_public_key')).length
  await sim.webhooks.rotateKey()
  const rotated = envelope(sim.webhooks.organizationId)
  const res = await post(url, rotated, { 'x-lago-signature': await sim.webhooks.sign('jwt', rotated), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': randomUUID() })
  t.equal(res.status, 200, 'a rotated key is fetched again')
  t.equal(sim.requests.entries().filter((r) => r.path.endsWith('/webhooks/json_public_key')).length, fetchesBefore + 1, 'once')

  const notices = await api.get('/api/lago-webhooks?type=alert.triggered&customer_id=cus-alert')
  t.equal(notices.json().webhooks.length, 2, 'alerts are recorded and listed by type and customer')
})

t.test('hmac: verified with LAGO_WEBHOOK_HMAC_KEY, and with the previous key during a rotation', async (t) => {
  const { app, sim, url } = await buildWithLagoWebhooks(t, { LAGO_WEBHOOK_HMAC_KEY: 'new-key-after-rotation', LAGO_WEBHOOK_HMAC_KEY_PREVIOUS: HMAC_KEY })
  const db = await sqlClient(t)
  t.equal(sim.webhooks.endpoints[0].signature_algo, 'hmac', 'hmac when the HMAC key is set')
  await subscribe(app, 'cus-hmac')
  await deliveredAndActedOn(app, sim)
  t.ok(sim.webhooks.deliveries.length >= 2 && sim.webhooks.deliveries.every((d) => d.status === 'succeeded'), 'signed with the previous key: accepted')
  const { rows } = await db.query('SELECT DISTINCT signature_algo FROM lago_webhooks WHERE unique_key = ANY($1)', [sim.webhooks.deliveries.map((d) => d.unique_key)])
  t.same(rows, [{ signature_algo: 'hmac' }], 'stored as hmac-verified')

  const body = envelope(sim.webhooks.organizationId)
  const signature = createHmac('sha256', 'new-key-after-rotation').update(body).digest('base64')
  t.equal((await post(url, body, { 'x-lago-signature': signature, 'x-lago-signature-algorithm': 'hmac', 'x-lago-unique-key': randomUUID() })).status, 200, 'the new key too')
})

t.test('the simulator retries like Lago: 3 attempts in all, the same unique key, success only on 2xx', async (t) => {
  const { sim } = await buildWithLagoWebhooks(t)
  const seen: Array<{ key: string | undefined, algo: string | undefined }> = []
  const statuses = [503, 302, 200]
  const receiver = createServer((req, res) => {
    seen.push({ key: req.headers['x-lago-unique-key'] as string | undefined, algo: req.headers['x-lago-signature-algorithm'] as string | undefined })
    res.writeHead(statuses[seen.length - 1] ?? 200).end()
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { receiver.close() })
  const { port } = receiver.address() as AddressInfo
  sim.webhooks.createEndpoint({ webhook_endpoint: { webhook_url: `http://127.0.0.1:${port}/hook`, signature_algo: 'hmac', event_types: ['wallet.depleted_ongoing_balance'] } })
  sim.webhooks.emit('wallet.depleted_ongoing_balance', 'wallet', { lago_id: randomUUID(), external_customer_id: 'cus-wallet', balance_cents: 0 })
  await sim.webhooks.settled()
  const delivery = sim.webhooks.deliveries.find((d) => d.webhook_url.endsWith('/hook'))
  t.same(delivery?.attempts.map((a) => a.http_status), [503, 302, 200], 'a 503 and a redirect are failures; the third attempt succeeds')
  t.equal(delivery?.status, 'succeeded')
  t.equal(new Set(seen.map((s) => s.key)).size, 1, 'one unique key across the retries')
  t.ok(seen.every((s) => s.algo === 'hmac'))
})
