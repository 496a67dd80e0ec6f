import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Redis } from 'ioredis'
import pino from 'pino'
import { LagoReadCache } from '../../../../plugins/app/billing/cache.js'
import { REDIS_URL } from '../../../helpers/app.js'

async function redisFor (t: { teardown: (fn: () => unknown) => void }) {
  const prefix = `test:cache:${randomBytes(4).toString('hex')}:`
  const redis = new Redis(REDIS_URL, { keyPrefix: prefix, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  await new Promise((resolve) => redis.once('ready', resolve))
  t.teardown(async () => {
    const raw = new Redis(REDIS_URL)
    const keys = await raw.keys(`${prefix}*`)
    if (keys.length > 0) await raw.del(...keys)
    raw.disconnect()
    redis.disconnect()
  })
  return redis
}

const counter = () => {
  let n = 0
  return { load: async () => ({ n: ++n }), get count () { return n } }
}

t.test('items and list pages are loaded once per TTL, and dropped by invalidate', async (t) => {
  const redis = await redisFor(t)
  const cache = new LagoReadCache({ redis, ttlSeconds: 60, log: pino({ level: 'silent' }) })
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

t.test('TTL 0 turns it off; Redis failing means loading every time, with one warning', async (t) => {
  const redis = await redisFor(t)
  const off = new LagoReadCache({ redis, ttlSeconds: 0, log: pino({ level: 'silent' }) })
  const item = counter()
  await off.item('plan', 'p', item.load)
  await off.item('plan', 'p', item.load)
  t.equal(item.count, 2)
  t.equal(await redis.exists('lago-cache:item:plan:p'), 0)

  const warnings: string[] = []
  const log = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(line) } })
  const broken = new LagoReadCache({ redis, ttlSeconds: 60, log })
  redis.disconnect()
  const other = counter()
  t.same(await broken.item('plan', 'p', other.load), { n: 1 })
  t.same(await broken.page('plans', 'x', other.load), { n: 2 })
  await broken.invalidate({ collections: ['plans'] })
  t.equal(warnings.length, 1, 'one warning, not one per call')
})
