import { execFile } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { build, runTypeScript, seedEvent, testDatabaseUrl } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'

const root = path.join(import.meta.dirname, '..', '..', '..')
// No Lago behind these apps: /api/customers/x/usage answers from PostgreSQL alone.
const USAGE = '/api/customers/acme/usage'
const OFFLINE = { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' }

t.test('a missing, wrong or malformed key gets the same 401; each kind of key passes', async (t) => {
  const app = await build(t, { ...OFFLINE, API_KEYS: 'key-one, key-two', LAGO_API_KEY: 'lago-key' })
  const refused = [
    await apiClient(app, null).get(USAGE),
    await apiClient(app, 'key-three').get(USAGE),
    await apiClient(app, '').get(USAGE),
    await app.inject({ url: USAGE, headers: { authorization: 'Basic key-one' } }),
    await app.inject({ url: USAGE, headers: { authorization: 'key-one' } })
  ]
  for (const res of refused) {
    t.equal(res.statusCode, 401)
    t.same(res.json(), { statusCode: 401, error: 'Unauthorized', code: 'unauthorized', message: 'Missing or invalid API key: send Authorization: Bearer <key>' })
  }
  t.equal(new Set(refused.map((r) => r.body)).size, 1, 'one body for every refusal')
  for (const key of ['key-one', 'key-two', 'lago-key']) t.equal((await apiClient(app, key).get(USAGE)).statusCode, 200, key)
  t.equal((await app.inject('/health/live')).statusCode, 200, 'health needs no key')
  t.equal((await app.inject('/docs/json')).statusCode, 200, 'the OpenAPI document needs no key')
  t.equal((await app.inject('/webhooks/stats')).statusCode, 401, 'the admin webhooks need a key too')
  t.equal((await apiClient(app, 'key-one').get('/webhooks/stats')).statusCode, 200)
  const retryWithoutKey = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: { 'content-type': 'application/json' }, payload: '{"statuses": "bad"}' })
  t.equal(retryWithoutKey.statusCode, 401, 'the key is checked before the body')
  const retryAll = await app.inject({ method: 'POST', url: '/webhooks/retry', headers: { authorization: 'Bearer key-one' }, payload: { all: true } })
  t.same([retryAll.statusCode, retryAll.json()], [200, { retried: 0 }], 'an authenticated {"all": true} retries everything')
})

t.test('keys stored by `npm run keys` work until revoked', async (t) => {
  const app = await build(t, OFFLINE)
  const run = promisify(execFile)
  const env = { PATH: process.env.PATH, DATABASE_URL: await testDatabaseUrl() }
  const keys = async (...args: string[]) => await run(process.execPath, [...runTypeScript(path.join(root, 'scripts', 'keys.ts')), ...args], { cwd: os.tmpdir(), env })

  const created = await keys('create', 'ci pipeline')
  const key = created.stdout.trim().split('\n').at(-1) ?? ''
  t.match(key, /^lai_[A-Za-z0-9_-]{43}$/, 'the key is printed alone on the last line')
  t.equal((await apiClient(app, key).get(USAGE)).statusCode, 200, 'the stored key authenticates')

  const duplicate = await keys('create', 'ci pipeline').catch((err: { code: number, stderr: string }) => err)
  t.match(duplicate, { code: 1, stderr: /already named "ci pipeline"/ })

  await keys('revoke', 'ci pipeline')
  t.equal((await apiClient(app, key).get(USAGE)).statusCode, 401, 'a revoked key is refused at once')
  const listed = (await keys('list')).stdout
  t.match(listed, /ci pipeline/)
  t.match(listed, new RegExp(`${key.slice(0, 10)}…`), 'the list shows a prefix')
  t.notMatch(listed, key, 'never the key itself')
  t.match(listed, /revoked 20/)
  t.match(await keys('create').catch((err: { code: number, stderr: string }) => err), { code: 2, stderr: /usage:/ })

  // The same through the repository: the stored digest is not the key.
  const { key: other, info } = await app.apiKeys.create('second')
  t.not((await app.db.selectFrom('api_keys').select('key_hash').where('id', '=', info.id).executeTakeFirstOrThrow()).key_hash.toString(), other)
  t.equal((await apiClient(app, other).get(USAGE)).statusCode, 200)
})

t.test('rate limits: per API key on /api, per IP without a valid key, 429 in the error shape with Retry-After', async (t) => {
  const app = await build(t, { ...OFFLINE, API_KEYS: 'key-a,key-b', RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' })
  const a = apiClient(app, 'key-a')
  for (let i = 0; i < 3; i++) {
    const res = await a.get(USAGE)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-ratelimit-remaining'], String(2 - i))
  }
  const limited = await a.get(USAGE)
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), { statusCode: 429, error: 'Too Many Requests', code: 'rate_limited', message: /^Too many requests: retry in \d+ (seconds|minute)/ })
  t.ok(Number(limited.headers['retry-after']) > 0 && Number(limited.headers['retry-after']) <= 60, `Retry-After ${String(limited.headers['retry-after'])}`)
  t.equal((await apiClient(app, 'key-b').get(USAGE)).statusCode, 200, 'another key has its own count')

  // Guessing keys: the wrong ones count against the IP, and the 401 turns into a 429.
  const guesses = []
  for (let i = 0; i < 4; i++) guesses.push((await apiClient(app, `guess-${i}`).get(USAGE)).statusCode)
  t.same(guesses, [401, 401, 401, 429])
  t.equal((await apiClient(app, 'key-b').get(USAGE)).statusCode, 200, 'keyed clients behind the same IP are not affected')

  for (let i = 0; i < 5; i++) t.equal((await app.inject('/health/ready')).statusCode, 200, 'health is never limited')
  const unknown = await app.inject('/no/such/route')
  t.equal(unknown.statusCode, 429, 'probing for routes counts against the IP too')
})

t.test('the ingestion endpoints share one much higher limit, apart from the general one', async (t) => {
  const app = await build(t, { ...OFFLINE, API_KEYS: 'key-a', RATE_LIMIT_MAX: '2', INGEST_RATE_LIMIT_MAX: '4' })
  const post = async (url: string, body: unknown) => await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
  const statuses = [
    (await post('/webhooks/litellm', seedEvent())).statusCode,
    (await post('/webhooks/litellm/batch', [seedEvent()])).statusCode,
    (await post('/webhooks/litellm', seedEvent())).statusCode,
    (await post('/webhooks/litellm/batch', [seedEvent()])).statusCode
  ]
  t.same(statuses, [202, 202, 202, 202], 'four ingestion requests pass where the general limit is two')
  const over = await post('/webhooks/litellm', seedEvent())
  t.equal(over.statusCode, 429)
  t.equal(over.json().code, 'rate_limited')
  t.equal((await post('/webhooks/litellm/batch', [seedEvent()])).statusCode, 429, 'one counter for every ingestion route')
  t.equal((await apiClient(app, 'key-a').get(USAGE)).statusCode, 200, 'the API keeps its own count')
})

t.test('INGEST_RATE_LIMIT_MAX=0: no limit on ingestion, the others unchanged', async (t) => {
  const app = await build(t, { ...OFFLINE, RATE_LIMIT_MAX: '1', INGEST_RATE_LIMIT_MAX: '0' })
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(seedEvent()) })
    t.equal(res.statusCode, 202)
    t.equal(res.headers['x-ratelimit-limit'], undefined, 'not counted at all')
  }
  t.equal((await app.inject('/webhooks/stats')).statusCode, 401)
  t.equal((await app.inject('/webhooks/stats')).statusCode, 429, 'the general limit still holds')
})

t.test('with Redis gone, requests are limited in-process rather than fail', async (t) => {
  const app = await build(t, { ...OFFLINE, API_KEYS: 'key-a', RATE_LIMIT_MAX: '2' })
  app.redis.client?.disconnect()
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await apiClient(app, 'key-a').get(USAGE)).statusCode)
  t.same(statuses, [200, 200, 429])
  const event = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(seedEvent()) })
  t.equal(event.statusCode, 202, 'ingestion goes on')
})

t.test('the API\'s own body limit: 413 in the error shape', async (t) => {
  const app = await build(t, { ...OFFLINE, API_KEYS: 'key-a', API_BODY_LIMIT_BYTES: '1024' })
  const res = await apiClient(app, 'key-a').post('/api/customers', `{"external_id": "x", "name": "${' '.repeat(2000)}"}`)
  t.equal(res.statusCode, 413)
  t.match(res.json(), { code: 'payload_too_large' })
})
