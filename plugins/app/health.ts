import fp from 'fastify-plugin'
import { sql } from 'kysely'
import type { RedisBreaker } from '../external/redis-breaker.js'
import type { DependencyCheckBody, RedisCheckBody } from '../../schemas/health.js'

export interface Health {
  check: () => Promise<{ database: DependencyCheckBody, redis: RedisCheckBody }>
}

declare module 'fastify' {
  interface FastifyInstance {
    health: Health
  }
}

const CHECK_TIMEOUT_MS = 2000

async function probe (run: () => Promise<unknown>): Promise<DependencyCheckBody> {
  const started = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      run(),
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS) })
    ])
    return { status: 'up', latency_ms: Math.round((performance.now() - started) * 100) / 100 }
  } catch (err) {
    return { status: 'down', error: err instanceof Error ? err.message : String(err) }
  } finally {
    clearTimeout(timer)
  }
}

const IN_PROCESS_WHILE_DOWN = 'in-process rate limits (per instance), no Lago read cache, until Redis answers'

/** Redis is optional: its state and what stands in for it. An open breaker is reported without calling Redis. */
async function redisCheck (redis: RedisBreaker): Promise<RedisCheckBody> {
  const state = redis.state
  if (state.status === 'not_configured') return { status: 'not_configured', fallback: 'in-process rate limits and Lago read cache (REDIS_URL unset: this instance only)' }
  if (state.status === 'down') return { status: 'down', error: state.error, since: state.since.toISOString(), fallback: IN_PROCESS_WHILE_DOWN }
  const check = await probe(async () => await redis.call(async (client) => await client.ping()))
  return check.status === 'up' ? check : { ...check, fallback: IN_PROCESS_WHILE_DOWN }
}

/** Reachability of the service's dependencies, bounded in time so a probe never hangs. */
export default fp(async function health (fastify) {
  fastify.decorate('health', {
    async check () {
      const [database, redis] = await Promise.all([
        probe(async () => await sql`SELECT 1`.execute(fastify.db)),
        redisCheck(fastify.redis)
      ])
      return { database, redis }
    }
  })
}, { name: 'health', dependencies: ['db', 'redis'] })
