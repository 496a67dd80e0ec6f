import fp from 'fastify-plugin'
import { sql } from 'kysely'
import type { DependencyCheckBody } from '../../schemas/health.js'

export interface Health {
  check: () => Promise<{ database: DependencyCheckBody, redis: DependencyCheckBody }>
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

/** Reachability of the service's dependencies, bounded in time so a probe never hangs. */
export default fp(async function health (fastify) {
  fastify.decorate('health', {
    async check () {
      const [database, redis] = await Promise.all([
        probe(async () => await sql`SELECT 1`.execute(fastify.db)),
        probe(async () => await fastify.redis.ping())
      ])
      return { database, redis }
    }
  })
}, { name: 'health', dependencies: ['db', 'redis'] })
