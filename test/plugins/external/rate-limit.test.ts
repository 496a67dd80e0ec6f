// Rate limits with Redis (keys as documented), without it (REDIS_URL unset: in-process) and with Redis configured
// but unreachable (in-process meanwhile). Each limit still answers 429 with Retry-After in the error shape.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { REDIS_URL, build, seedEvent } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'
import { freePort } from '../../helpers/redis-server.js'

const USAGE = '/api/customers/acme/usage'
const OFFLINE = { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' }

const ingest = async (app: FastifyInstance) => await app.inject({
  method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(seedEvent())
})

/** Three ingestion requests under INGEST_RATE_LIMIT_MAX=2: the third is limited, in the error shape. */
async function hitsTheIngestionLimit (t: Test, app: FastifyInstance): Promise<void> {
  t.same([(await ingest(app)).statusCode, (await ingest(app)).statusCode], [202, 202])
  const over = await ingest(app)
  t.equal(over.statusCode, 429)
  t.match(over.json(), { statusCode: 429, code: 'rate_limited', message: /^Too many requests/ })
  const retryAfter = Number(over.headers['retry-after'])
  t.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${String(over.headers['retry-after'])}`)
}

t.test('in Redis, the /api limit has the documented key (per API key); the ingestion limit is counted in-process, per instance', { skip: REDIS_URL === undefined && 'no Redis for this run' }, async (t) => {
  const prefix = `test:keys:${process.pid}:`
  const app = await build(t, { ...OFFLINE, API_KEYS: 'key-a', REDIS_KEY_PREFIX: prefix })
  t.equal((await ingest(app)).statusCode, 202)
  t.equal((await ingest(app)).statusCode, 202)
  t.equal((await apiClient(app, 'key-a').get(USAGE)).statusCode, 200)

  const redis = new Redis(REDIS_URL as string)
  t.teardown(() => redis.disconnect())
  const keys = (await redis.keys(`${prefix}rate-limit:*`)).map((k) => k.slice(prefix.length)).sort()
  t.equal(keys.length, 1, `one counter in Redis: ${keys.join(', ')}`)
  t.match(keys[0], /^rate-limit:key:\S+$/, 'the /api counter, per API key')
})

t.test('with Redis up, the ingestion limit still answers 429 (counted in this process)', { skip: REDIS_URL === undefined && 'no Redis for this run' }, async (t) => {
  const app = await build(t, { ...OFFLINE, INGEST_RATE_LIMIT_MAX: '2' })
  await hitsTheIngestionLimit(t, app)
})

t.test('REDIS_URL unset: limits are in-process and still answer 429 with Retry-After; /health says so', async (t) => {
  const app = await build(t, { ...OFFLINE, REDIS_URL: undefined, INGEST_RATE_LIMIT_MAX: '2' })
  await hitsTheIngestionLimit(t, app)
  const health = (await app.inject('/health')).json()
  t.match(health, { status: 'ok', checks: { redis: { status: 'not_configured', fallback: /in-process/ } } })
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.match(ready.json().checks.redis, { status: 'not_configured' })
})

t.test('REDIS_URL unreachable at start: the app is ready at once and limits are in-process', async (t) => {
  const started = Date.now()
  const app = await build(t, { ...OFFLINE, REDIS_URL: `redis://127.0.0.1:${await freePort()}`, INGEST_RATE_LIMIT_MAX: '2' })
  t.ok(Date.now() - started < 10_000, 'ready without waiting for Redis')
  await hitsTheIngestionLimit(t, app)
  const health = (await app.inject('/health')).json()
  t.match(health, { status: 'degraded', checks: { database: { status: 'up' }, redis: { status: 'down', fallback: /in-process/ } } })
  t.equal((await app.inject('/health/ready')).statusCode, 200, 'Redis is optional: still ready')
})

t.test('Redis lost while running: the limits go on per process', { skip: REDIS_URL === undefined && 'no Redis for this run' }, async (t) => {
  const app = await build(t, { ...OFFLINE, INGEST_RATE_LIMIT_MAX: '2' })
  app.redis.client?.disconnect()
  await hitsTheIngestionLimit(t, app)
})
