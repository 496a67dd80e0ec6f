import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { RedisBreaker } from './redis-breaker.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Redis behind a circuit breaker, or no Redis at all (REDIS_URL unset). It only holds rate-limit counters and
     * the Lago read cache, so nothing may depend on it: callers use `redis.call` and fall back in-process.
     */
    redis: RedisBreaker
  }
}

/** Consecutive failed or timed-out commands that make the service stop calling Redis for a while. */
const FAILURE_THRESHOLD = 3
/** How long Redis is left alone after that before a PING probes it. */
const COOLDOWN_MS = 5000
const CONNECT_TIMEOUT_MS = 2000

/** host:port of a Redis URL, for log lines: never the password. */
const whereIs = (url: string): string => {
  const { hostname, port } = new URL(url)
  return `${hostname}:${port === '' ? '6379' : port}`
}

export default fp(async function redis (fastify) {
  const { config, log } = fastify
  if (config.REDIS_URL === undefined) {
    log.info('REDIS_URL is not set: rate limits and the Lago read cache are in-process (this instance only)')
    fastify.decorate('redis', new RedisBreaker({ client: null, where: 'none', log, failureThreshold: FAILURE_THRESHOLD, cooldownMs: COOLDOWN_MS }))
    return
  }

  const where = whereIs(config.REDIS_URL)
  // No offline queue and a short command timeout: while Redis is away or hung, a call fails at once or within
  // REDIS_COMMAND_TIMEOUT_MS, and the breaker then stops calling it at all.
  const client = new Redis(config.REDIS_URL, {
    keyPrefix: config.REDIS_KEY_PREFIX,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false
  })
  // ioredis reconnects by itself (every 2 s at most); the breaker logs the outage once, not every attempt.
  client.on('error', (err: Error) => { log.debug({ err }, 'Redis connection error') })

  // Wait a little for the first connection, so that a healthy Redis is in use from the first request; an absent
  // or hung one does not hold up the start.
  let timer: NodeJS.Timeout | undefined
  const startDown = await new Promise<string | undefined>((resolve) => {
    client.once('ready', () => resolve(undefined))
    client.once('error', (err: Error) => resolve(err.message))
    timer = setTimeout(() => resolve(`no answer within ${CONNECT_TIMEOUT_MS} ms`), CONNECT_TIMEOUT_MS + 500)
  })
  clearTimeout(timer)
  const breaker = new RedisBreaker({ client, where, log, failureThreshold: FAILURE_THRESHOLD, cooldownMs: COOLDOWN_MS, startDown })
  if (startDown === undefined) log.info(`Redis at ${where}: rate limits and the Lago read cache are shared through it`)
  fastify.decorate('redis', breaker)
  // Shutting down must not depend on Redis.
  fastify.addHook('onClose', async () => {
    breaker.close()
    await client.quit().catch(() => client.disconnect())
  })
}, { name: 'redis', dependencies: ['config'] })
