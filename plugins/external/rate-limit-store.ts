import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { Redis } from 'ioredis'
import type { RedisBreaker } from './redis-breaker.js'

type Counted = { current: number, ttl: number }
type Callback = (error: Error | null, result?: Counted) => void

// A fixed window per key: the first hit sets the expiry, later hits read what is left of it. A key that lost its
// expiry (it cannot happen through this script, but a stray key must not limit a client for ever) gets one again.
const INCREMENT = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if current == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`

interface RateLimitCommands { rateLimitIncrement: (key: string, windowMs: number) => Promise<[number, number]> }

/** Most keys an in-process counter table holds; past it, the oldest windows are dropped first. */
const LOCAL_MAX_KEYS = 10_000

/** Fixed-window counters in this process: the store without Redis, and while Redis is away. */
export class LocalCounters {
  readonly #windows = new Map<string, { count: number, resetAt: number }>()

  increment (key: string, windowMs: number, now = Date.now()): Counted {
    let window = this.#windows.get(key)
    if (window === undefined || window.resetAt <= now) {
      this.#windows.delete(key)
      window = { count: 0, resetAt: now + windowMs }
      this.#windows.set(key, window)
      // Map order is insertion order: the first entries are the oldest windows.
      if (this.#windows.size > LOCAL_MAX_KEYS) this.#windows.delete(this.#windows.keys().next().value as string)
    }
    window.count++
    return { current: window.count, ttl: window.resetAt - now }
  }
}

/**
 * The rate-limit store: counters in Redis under `<namespace><key>` while Redis answers (shared by replicas), else
 * in this process (always, for a limiter made with `inProcess: true`). A Redis failure never fails the request: it is counted in-process instead, and the breaker
 * stops calling Redis after a few failures. When Redis answers again the counters are Redis's again (the
 * in-process ones are simply no longer read).
 */
export function fallbackStore (redis: RedisBreaker, namespace: string): FastifyRateLimitStoreCtor {
  const local = new LocalCounters()
  const define = (client: Redis): RateLimitCommands => {
    if (!('rateLimitIncrement' in client)) client.defineCommand('rateLimitIncrement', { numberOfKeys: 1, lua: INCREMENT })
    return client as unknown as RateLimitCommands
  }
  if (redis.client !== null) define(redis.client)

  // A limiter made with `inProcess: true` (the ingestion limit) counts here only: no Redis round trip per request.
  const inProcess = (prefix: string): FastifyRateLimitStore => ({
    incr (key: string, callback: Callback, timeWindow: number) { callback(null, local.increment(`${prefix}${key}`, timeWindow)) },
    child: () => inProcess(prefix)
  })

  const store = (prefix: string): FastifyRateLimitStore => ({
    incr (key: string, callback: Callback, timeWindow: number) {
      const counted = `${prefix}${key}`
      if (!redis.available) {
        callback(null, local.increment(counted, timeWindow))
        return
      }
      redis.call(async (client) => await define(client).rateLimitIncrement(counted, timeWindow)).then(
        ([current, ttl]) => { callback(null, { current, ttl }) },
        () => { callback(null, local.increment(counted, timeWindow)) }
      )
    },
    // The plugin derives a store per route with its own `config.rateLimit` (keyed by method and URL), and one
    // for each limiter made with fastify.rateLimit(), which has no route: that one keeps the namespace, its
    // keyGenerator already names the limit (ingestion:ip:…).
    child (options) {
      if ((options as { inProcess?: unknown }).inProcess === true) return inProcess(prefix)
      const route = (options as { routeInfo?: { method?: unknown, url?: unknown } }).routeInfo
      return store(typeof route?.url === 'string' ? `${prefix}${String(route.method)}:${route.url}:` : prefix)
    }
  })
  return function FallbackStore () { return store(namespace) } as unknown as FastifyRateLimitStoreCtor
}
