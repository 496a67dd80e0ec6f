import fp from 'fastify-plugin'
import fastifyRedis from '@fastify/redis'
import { Redis } from 'ioredis'

export default fp(async function redis (fastify) {
  // Short timeouts and no offline queue: when Redis is away, callers (readiness, rate limits, caches) get an
  // error at once instead of waiting.
  const client = new Redis(fastify.config.REDIS_URL, {
    keyPrefix: fastify.config.REDIS_KEY_PREFIX,
    connectTimeout: 2000,
    // A Redis that hangs (rather than refusing) must not stall rate limits, caches or readiness either.
    commandTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false
  })
  client.on('error', (err: Error) => fastify.log.warn({ err }, 'Redis connection error'))
  // @fastify/redis waits for the connection and decorates fastify.redis. It would close the client with
  // quit(), which throws when Redis is down at that moment; shutting down must not depend on Redis.
  await fastify.register(fastifyRedis, { client, closeClient: false })
  fastify.addHook('onClose', async () => {
    await client.quit().catch(() => client.disconnect())
  })
}, { name: 'redis', dependencies: ['config'] })
