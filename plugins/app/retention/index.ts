import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { detachedMonths, detachPartitionsBefore, dropPartitionsBefore, ensureMonthlyPartitions, monthStart } from '../../../db/partitions.js'
import { databaseUnavailable } from '../../../db/errors.js'
import { deleteOldHourlyCounts, lockPartitions, removeRetiredLeftovers, retireDetachedMonth, USAGE_EVENTS, type RetiredMonth } from './usage-events.js'

/** Tables partitioned by month: the delivery log (old months dropped whole) and the usage events (old months retired). */
export const PARTITIONED_TABLES = ['webhook_delivery_logs', USAGE_EVENTS] as const

export interface RetentionRun {
  /** Partitions created ahead. */
  created: string[]
  /** Delivery-log months dropped. */
  dropped: string[]
  /** Usage-event months retired: their forwarded and not-billable events removed, any other kept. */
  retired: RetiredMonth[]
  /** Retirable events removed one by one from the default partition (kept earlier because they were not done). */
  leftovers: number
  /** Rows of usage_event_hourly_counts deleted: hours no 24-hour window reads any more (whatever RETENTION_DAYS). */
  hourlyCounts: number
}

export interface Retention {
  /**
   * Creates the coming months' partitions and, with RETENTION_DAYS set, removes the months wholly older than it;
   * deletes the hourly counts no 24-hour window reads (older than 26 hours).
   */
  run: (now?: Date) => Promise<RetentionRun>
}

declare module 'fastify' {
  interface FastifyInstance {
    retention: Retention
  }
}

const HOUR_MS = 3_600_000

/**
 * Keeps the monthly partitions ahead of time (at start, then hourly) and applies RETENTION_DAYS to whole months: no
 * row-by-row DELETE, no bloat. Default 0 keeps everything for ever. A delivery-log month is dropped; a usage-event
 * month is detached (a brief lock of the table), then its events still to be sent or looked at are put back and the
 * rest dropped with it, in a transaction of its own.
 */
export default fp(async function retention (fastify) {
  const { config, db, log } = fastify
  const run: Retention['run'] = async (now = new Date()) => {
    // First: the steps below may fail (a lock not granted within 5 s) and these hours must go anyway.
    const hourlyCounts = await deleteOldHourlyCounts(db)
    const created: string[] = []
    const dropped: string[] = []
    const cutoff = new Date(now.getTime() - config.RETENTION_DAYS * 86_400_000)
    // One replica at a time (a transaction-scoped advisory lock): two creating the same month would collide.
    await db.transaction().execute(async (trx) => {
      await lockPartitions(trx)
      for (const table of PARTITIONED_TABLES) created.push(...await ensureMonthlyPartitions(trx, table, now))
      if (config.RETENTION_DAYS > 0) {
        dropped.push(...await dropPartitionsBefore(trx, 'webhook_delivery_logs', cutoff))
        // Detaching locks the events table against ingestion until this commits: wait a bounded time for it.
        await sql`SELECT set_config('lock_timeout', '5s', true)`.execute(trx)
        await detachPartitionsBefore(trx, USAGE_EVENTS, cutoff)
      }
    })
    const retired: RetiredMonth[] = []
    let leftovers = 0
    if (config.RETENTION_DAYS > 0) {
      // Also months a stopped run detached and did not finish.
      for (const month of await detachedMonths(db, USAGE_EVENTS)) retired.push(await retireDetachedMonth(db, month))
      leftovers = await removeRetiredLeftovers(db, monthStart(cutoff))
    }
    if (created.length > 0 || dropped.length > 0 || retired.length > 0 || leftovers > 0) {
      log.info({ created, dropped, retired, leftovers }, 'retention: partitions created, old months removed')
    }
    return { created, dropped, retired, leftovers, hourlyCounts }
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
