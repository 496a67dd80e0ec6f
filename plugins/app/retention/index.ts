import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { dropPartitionsBefore, ensureMonthlyPartitions } from '../../../db/partitions.js'
import { databaseUnavailable } from '../../../db/errors.js'

/** Tables partitioned by month whose old months retention may drop. */
export const PARTITIONED_TABLES = ['webhook_delivery_logs'] as const

export interface Retention {
  /** Creates the coming months' partitions and, with RETENTION_DAYS set, drops the months wholly older than it. */
  run: (now?: Date) => Promise<{ created: string[], dropped: string[] }>
}

declare module 'fastify' {
  interface FastifyInstance {
    retention: Retention
  }
}

const HOUR_MS = 3_600_000

/**
 * Keeps the monthly partitions ahead of time (at start, then hourly) and applies RETENTION_DAYS by dropping whole
 * months: no row-by-row DELETE, no bloat. Default 0 keeps everything for ever.
 */
export default fp(async function retention (fastify) {
  const { config, db, log } = fastify
  const run: Retention['run'] = async (now = new Date()) => {
    const created: string[] = []
    const dropped: string[] = []
    // One replica at a time (a transaction-scoped advisory lock): two creating the same month would collide.
    await db.transaction().execute(async (trx) => {
      await sql`SELECT pg_advisory_xact_lock(hashtextextended('retention:partitions', 0))`.execute(trx)
      for (const table of PARTITIONED_TABLES) {
        created.push(...await ensureMonthlyPartitions(trx, table, now))
        if (config.RETENTION_DAYS > 0) dropped.push(...await dropPartitionsBefore(trx, table, new Date(now.getTime() - config.RETENTION_DAYS * 86_400_000)))
      }
    })
    if (created.length > 0 || dropped.length > 0) log.info({ created, dropped }, 'retention: partitions created and dropped')
    return { created, dropped }
  }
  fastify.decorate('retention', { run })

  let timer: NodeJS.Timeout | undefined
  const tick = (): void => {
    // A database outage is reported once by the database plugin; months are created ahead, so an hour's wait is safe.
    run().catch((err: unknown) => { if (!databaseUnavailable(err)) log.warn({ err }, 'retention: partition upkeep failed; retried in an hour') })
      .finally(() => { if (timer !== undefined) timer = setTimeout(tick, HOUR_MS).unref() })
  }
  fastify.addHook('onReady', async () => { timer = setTimeout(tick, 0).unref() })
  fastify.addHook('onClose', async () => {
    clearTimeout(timer)
    timer = undefined
  })
}, { name: 'retention', dependencies: ['config', 'db'] })
