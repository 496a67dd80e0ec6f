import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto'
import t from 'tap'
import { SignJWT } from 'jose'
import type { FastifyInstance } from 'fastify'
import { build, sqlClient } from '../../helpers/app.js'
import { ADMIN_KEY, until } from '../../helpers/forwarding.js'
import { simulator } from '../../helpers/lago.js'

// POST /webhooks/lago through app.inject; deliveries from the simulator over HTTP are in lago-deliveries.slow.test.ts.
const CURRENT = 'hmac-key-current'
const PREVIOUS = 'hmac-key-previous'

const sim = await simulator(t, { webhooks: { hmacKey: CURRENT } })
const env = { LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey, API_KEYS: ADMIN_KEY, BOOTSTRAP_ON_START: 'false', FORWARDER_ENABLED: 'false', LAGO_WEBHOOK_HMAC_KEY: CURRENT, LAGO_WEBHOOK_HMAC_KEY_PREVIOUS: PREVIOUS, BILLING_AUDIT_INTERVAL_MS: '0' }
const db = await sqlClient(t)

const envelope = (extra: Record<string, unknown> = {}): string => JSON.stringify({
  webhook_type: 'alert.triggered',
  object_type: 'triggered_alert',
  organization_id: sim.webhooks.organizationId,
  triggered_alert: { lago_id: randomUUID(), external_customer_id: 'cus-alert', alert_code: 'budget', current_value: '120.0', ...extra }
})
const deliver = async (app: FastifyInstance, body: string, headers: Record<string, string>) =>
  await app.inject({ method: 'POST', url: '/webhooks/lago', headers: { 'content-type': 'application/json', ...headers }, payload: body })
const signed = async (algo: 'jwt' | 'hmac', body: string, key: string = randomUUID()) =>
  ({ 'x-lago-signature': await sim.webhooks.sign(algo, body), 'x-lago-signature-algorithm': algo, 'x-lago-unique-key': key })
const storedCount = async (keys: string[]): Promise<number> =>
  (await db.query('SELECT count(*)::int AS n FROM lago_webhooks WHERE unique_key = ANY($1)', [keys])).rows[0].n

t.test('genuine jwt and hmac deliveries are accepted, each unique key stored once', async (t) => {
  const app = await build(t, env)
  const body = envelope()
  const jwt = await signed('jwt', body)
  const first = await deliver(app, body, jwt)
  t.equal(first.statusCode, 200, 'jwt')
  t.equal(first.json().status, 'stored')
  const repeat = await deliver(app, body, jwt)
  t.same(repeat.json(), { status: 'duplicate', id: first.json().id }, 'a retry with the same unique key: 200, duplicate')
  t.equal(await storedCount([jwt['x-lago-unique-key']]), 1, 'stored once')

  t.equal((await deliver(app, body, await signed('hmac', body))).statusCode, 200, 'hmac with the current key')
  const previous = { 'x-lago-signature': createHmac('sha256', PREVIOUS).update(body).digest('base64'), 'x-lago-signature-algorithm': 'hmac', 'x-lago-unique-key': randomUUID() }
  t.equal((await deliver(app, body, previous)).statusCode, 200, 'hmac with the previous key, during a rotation')

  const fetches = (): number => sim.requests.entries().filter((r) => r.path.endsWith('/webhooks/json_public_key')).length
  const before = fetches()
  await sim.webhooks.rotateKey()
  const rotated = envelope()
  t.equal((await deliver(app, rotated, await signed('jwt', rotated))).statusCode, 200, 'Lago rotated its key: fetched again, verified')
  t.equal(fetches(), before + 1, 'one more fetch of the public key')

  const listed = await app.inject({ method: 'GET', url: '/api/lago-webhooks?type=alert.triggered&customer_id=cus-alert&per_page=2', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  t.equal(listed.statusCode, 200)
  t.equal(listed.json().meta.total_count, 4, 'recorded and listed by type and customer')
  t.equal(listed.json().webhooks.length, 2, 'paged')
  t.equal((await app.inject({ method: 'GET', url: '/api/lago-webhooks' })).statusCode, 401, 'the list needs an API key')
})

t.test('GET /api/lago-webhooks filters by when they were received: from inclusive, to exclusive', async (t) => {
  const app = await build(t, env)
  const customer = `cus-window-${randomUUID()}`
  // Three deliveries, then their receipt times set to known instants (a minute apart) so the window is exact.
  const times = ['2026-11-20T10:00:00.000Z', '2026-11-20T10:01:00.000Z', '2026-11-20T10:02:00.000Z']
  const keys: string[] = []
  for (const at of times) {
    const body = envelope({ external_customer_id: customer })
    const headers = await signed('hmac', body)
    t.equal((await deliver(app, body, headers)).statusCode, 200)
    await db.query('UPDATE lago_webhooks SET received_at = $1 WHERE unique_key = $2', [at, headers['x-lago-unique-key']])
    keys.push(headers['x-lago-unique-key'])
  }
  const listed = async (query: string): Promise<{ status: number, keys: string[], total: number }> => {
    const res = await app.inject({ method: 'GET', url: `/api/lago-webhooks?customer_id=${customer}${query}`, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    return { status: res.statusCode, keys: res.statusCode === 200 ? res.json().webhooks.map((w: { unique_key: string }) => w.unique_key) : [], total: res.statusCode === 200 ? res.json().meta.total_count : -1 }
  }
  const newestFirst = (indexes: number[]): string[] => indexes.map((i) => keys[i]).reverse()
  t.same(await listed(''), { status: 200, keys: newestFirst([0, 1, 2]), total: 3 }, 'no window: all three, newest first')
  t.same(await listed(`&from=${times[1]}`), { status: 200, keys: newestFirst([1, 2]), total: 2 }, 'from is inclusive')
  t.same(await listed(`&to=${times[1]}`), { status: 200, keys: newestFirst([0]), total: 1 }, 'to is exclusive')
  t.same(await listed(`&from=${times[0]}&to=${times[2]}`), { status: 200, keys: newestFirst([0, 1]), total: 2 }, 'both')
  t.same(await listed(`&from=${encodeURIComponent('2026-11-20T11:00:30+01:00')}`), { status: 200, keys: newestFirst([1, 2]), total: 2 }, 'an offset is honoured (10:00:30Z)')
  t.same(await listed(`&from=${times[2]}&to=${times[0]}`), { status: 200, keys: [], total: 0 }, 'an empty window lists nothing')
  const bad = await app.inject({ method: 'GET', url: '/api/lago-webhooks?from=yesterday', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  t.match(bad.json(), { statusCode: 400, code: 'validation_error', message: /from/ }, 'a from that is not a date-time is refused, naming it')
})

t.test('every forgery is refused with 401 and stored nowhere', async (t) => {
  const app = await build(t, env)
  const body = envelope()
  const used: string[] = []
  const key = (): string => {
    used.push(randomUUID())
    return used[used.length - 1]
  }
  const b64url = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const publicPem = Buffer.from((await sim.webhooks.publicKey()).webhook.public_key, 'base64').toString()
  const withIssuer = async (iss: string): Promise<string> => {
    const saved = sim.webhooks.issuer
    sim.webhooks.issuer = iss
    try { return await sim.webhooks.sign('jwt', body) } finally { sim.webhooks.issuer = saved }
  }
  const jwtOf = async (b: string): Promise<string> => await sim.webhooks.sign('jwt', b)
  const forgeries: Array<[string, Record<string, string>, string?]> = [
    ['unsigned', { 'x-lago-unique-key': key() }],
    ['no algorithm', { 'x-lago-signature': await jwtOf(body), 'x-lago-unique-key': key() }],
    ['unknown algorithm', { 'x-lago-signature': await jwtOf(body), 'x-lago-signature-algorithm': 'rs256', 'x-lago-unique-key': key() }],
    ['hmac with a wrong key', { 'x-lago-signature': createHmac('sha256', 'guessed').update(body).digest('base64'), 'x-lago-signature-algorithm': 'hmac', 'x-lago-unique-key': key() }],
    ['hmac of another body', { 'x-lago-signature': await sim.webhooks.sign('hmac', envelope({ current_value: '1.0' })), 'x-lago-signature-algorithm': 'hmac', 'x-lago-unique-key': key() }],
    ['jwt header with an hmac signature', { 'x-lago-signature': await sim.webhooks.sign('hmac', body), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }],
    ['alg: none', { 'x-lago-signature': `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ data: body, iss: sim.url })}.`, 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }],
    ['HS256 keyed with Lago\'s public key', { 'x-lago-signature': await new SignJWT({ data: body, iss: sim.url }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(publicPem)), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }],
    ['RS256 with another key', { 'x-lago-signature': await new SignJWT({ data: body, iss: sim.url }).setProtectedHeader({ alg: 'RS256' }).sign(other.privateKey), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }],
    ['a valid jwt whose data is another body', { 'x-lago-signature': await jwtOf(envelope({ current_value: '1.0' })), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }],
    ['a jwt from an unknown issuer', { 'x-lago-signature': await withIssuer('https://lago.example.invalid'), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }],
    ['garbage', { 'x-lago-signature': 'not-a-jwt', 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }],
    ['a valid jwt, tampered body', { 'x-lago-signature': await jwtOf(body), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }, body.replace('120.0', '1.0')],
    ['a valid jwt, not JSON', { 'x-lago-signature': await jwtOf(body), 'x-lago-signature-algorithm': 'jwt', 'x-lago-unique-key': key() }, '{not json']
  ]
  for (const [what, headers, sent] of forgeries) {
    const res = await deliver(app, sent ?? body, headers)
    t.equal(res.statusCode, 401, what)
    t.equal(res.json().code, 'invalid_signature', `${what}: error code`)
  }
  t.equal(await storedCount(used), 0, 'nothing stored')

  const hmacOnly = await build(t, { ...env, LAGO_WEBHOOK_HMAC_KEY: undefined, LAGO_WEBHOOK_HMAC_KEY_PREVIOUS: undefined })
  t.equal((await deliver(hmacOnly, body, await signed('hmac', body, key()))).statusCode, 401, 'hmac refused when no HMAC key is configured')
  const missingKey = await deliver(app, body, { 'x-lago-signature': await jwtOf(body), 'x-lago-signature-algorithm': 'jwt' })
  t.equal(missingKey.statusCode, 400, 'a genuine delivery without X-Lago-Unique-Key is a clear 400')
  t.equal(missingKey.json().code, 'missing_unique_key')
})

t.test('a webhook stored but not yet acted on (the process died in between) is acted on after a restart', async (t) => {
  // What a crash right after the INSERT leaves behind: the row, processed_at null.
  const body = { webhook_type: 'subscription.started', object_type: 'subscription', organization_id: sim.webhooks.organizationId, subscription: { lago_id: randomUUID(), external_id: 'sub-crash', external_customer_id: 'cus-crash', plan_code: 'p', status: 'active', started_at: new Date().toISOString() } }
  const { rows } = await db.query("INSERT INTO lago_webhooks (unique_key, webhook_type, object_type, signature_algo, body) VALUES ($1, 'subscription.started', 'subscription', 'jwt', $2) RETURNING id", [randomUUID(), JSON.stringify(body)])
  await build(t, env)
  await until(async () => (await db.query('SELECT processed_at FROM lago_webhooks WHERE id = $1', [rows[0].id])).rows[0].processed_at !== null, 'the worker to act on it')
  const customer = await db.query("SELECT subscription_external_id FROM customers WHERE external_id = 'cus-crash'")
  t.same(customer.rows, [{ subscription_external_id: 'sub-crash' }], 'the act happened')
})
