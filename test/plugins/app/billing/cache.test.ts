import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Redis } from 'ioredis'
import pino, { type Logger } from 'pino'
import { LagoReadCache } from '../../../../plugins/app/billing/cache.js'
import { RedisBreaker } from '../../../../plugins/external/redis-breaker.js'
import { REDIS_URL } from '../../../helpers/app.js'
import { waitFor } from '../../../helpers/redis-server.js'

const NO_REDIS = REDIS_URL === undefined && 'no Redis for this run'
const silent = pino({ level: 'silent' })

/** A client with a key prefix of its own behind a breaker (as the service has it), cleaned up at the end. */
async function redisFor (t: { teardown: (fn: () => unknown) => void }, log: Logger = silent) {
  const prefix = `test:cache:${randomBytes(4).toString('hex')}:`
  const redis = new Redis(REDIS_URL as string, { keyPrefix: prefix, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  redis.on('error', () => {})
  await new Promise((resolve) => redis.once('ready', resolve))
  const breaker = new RedisBreaker({ client: redis, where: 'test', log, failureThreshold: 1, cooldownMs: 50 })
  t.teardown(async () => {
    breaker.close()
    const raw = new Redis(REDIS_URL as string)
    const keys = await raw.keys(`${prefix}*`)
    if (keys.length > 0) await raw.del(...keys)
    raw.disconnect()
    redis.disconnect()
  })
  return { redis, breaker }
}

const counter = () => {
  let n = 0
  return { load: async () => ({ n: ++n }), get count () { return n } }
}

t.test('items and list pages are loaded once per TTL, and dropped by invalidate', { skip: NO_REDIS }, async (t) => {
  const { redis, breaker } = await redisFor(t)
  const cache = new LagoReadCache({ redis: breaker, ttlSeconds: 60, log: silent })
  const item = counter()
  t.same(await cache.item('customer', 'a', item.load), { n: 1 })
  t.same(await cache.item('customer', 'a', item.load), { n: 1 }, 'from Redis')
  t.ok(await redis.ttl('lago-cache:item:customer:a') <= 60)

  const page = counter()
  t.same(await cache.page('customers', 'p1', page.load), { n: 1 })
  t.same(await cache.page('customers', 'p1', page.load), { n: 1 })
  t.same(await cache.page('customers', 'p2', page.load), { n: 2 }, 'another page is another entry')
  t.ok(await redis.ttl('lago-cache:list:customers') > 0, 'the list expires')

  await cache.invalidate({ items: [['customer', 'a']], collections: ['customers'] })
  t.same(await cache.item('customer', 'a', item.load), { n: 2 })
  t.same(await cache.page('customers', 'p2', page.load), { n: 3 }, 'every page of the list was dropped')

  await t.rejects(cache.item('customer', 'b', async () => { throw new Error('Lago said no') }), /Lago said no/)
  t.equal(await redis.exists('lago-cache:item:customer:b'), 0, 'failures are not cached')
})

t.test('TTL 0 turns it off; Redis failing means loading every time, with one warning', { skip: NO_REDIS }, async (t) => {
  const warnings: string[] = []
  const log = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(line) } })
  const { redis, breaker } = await redisFor(t, log)
  const off = new LagoReadCache({ redis: breaker, ttlSeconds: 0, log: silent })
  const item = counter()
  await off.item('plan', 'p', item.load)
  await off.item('plan', 'p', item.load)
  t.equal(item.count, 2)
  t.equal(await redis.exists('lago-cache:item:plan:p'), 0)

  const broken = new LagoReadCache({ redis: breaker, ttlSeconds: 60, log })
  redis.disconnect()
  const other = counter()
  t.same(await broken.item('plan', 'p', other.load), { n: 1 })
  t.same(await broken.page('plans', 'x', other.load), { n: 2 })
  await broken.invalidate({ collections: ['plans'] })
  t.equal(warnings.length, 1, 'one warning (the breaker\'s), not one per call')
  t.match(warnings[0], /in-process/)
})

t.test('a write while Redis is away: the stale copy is dropped as soon as Redis answers again', { skip: NO_REDIS }, async (t) => {
  const { redis, breaker } = await redisFor(t)
  const cache = new LagoReadCache({ redis: breaker, ttlSeconds: 60, log: silent })
  const item = counter()
  await cache.item('customer', 'a', item.load)
  redis.disconnect()
  await cache.invalidate({ items: [['customer', 'a']] })
  t.notOk(breaker.available, 'the breaker is open')
  await waitFor(() => redis.status === 'end', 'the client to be closed')
  await redis.connect()
  await waitFor(() => breaker.available, 'the breaker to close after a probe')
  t.same(await cache.item('customer', 'a', item.load), { n: 2 }, 'not the copy from before the write')
})

t.test('without Redis: the same cache in-process', async (t) => {
  const breaker = new RedisBreaker({ client: null, where: 'none', log: silent, failureThreshold: 1, cooldownMs: 50 })
  const cache = new LagoReadCache({ redis: breaker, ttlSeconds: 60, log: silent })
  const item = counter()
  t.same(await cache.item('customer', 'a', item.load), { n: 1 })
  t.same(await cache.item('customer', 'a', item.load), { n: 1 }, 'cached')
  const page = counter()
  t.same(await cache.page('customers', 'p1', page.load), { n: 1 })
  t.same(await cache.page('customers', 'p1', page.load), { n: 1 })
  t.same(await cache.page('customers', 'p2', page.load), { n: 2 })
  await cache.invalidate({ items: [['customer', 'a']], collections: ['customers'] })
  t.same(await cache.item('customer', 'a', item.load), { n: 2 }, 'dropped by invalidate')
  t.same(await cache.page('customers', 'p1', page.load), { n: 3 }, 'every page of the list was dropped')
  await t.rejects(cache.item('customer', 'b', async () => { throw new Error('Lago said no') }), /Lago said no/)
  const short = new LagoReadCache({ redis: breaker, ttlSeconds: 1, log: silent })
  const expiring = counter()
  await short.item('plan', 'p', expiring.load)
  const cachedAt = Date.now()
  await waitFor(async () => (await short.item('plan', 'p', expiring.load)).n === 2, 'the entry to expire')
  t.ok(Date.now() - cachedAt >= 1000, 'not before its TTL')
})
