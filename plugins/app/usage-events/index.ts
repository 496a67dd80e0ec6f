import { EventEmitter } from 'node:events'
import fp from 'fastify-plugin'
import type { StatsResponseBody, StatusCountsBody } from '../../../schemas/usage-events.js'
import { usageEventProblem, type UsageEvent } from './normalize.js'
import { countByStatus, countUnsent, insertUsageEvents, oldestUnsentAgeSeconds, receivedInLastMinute, unmappedReasons, type WriteOutcome } from './repository.js'
import { UsageEventWriter } from './writer.js'

// The reader of this service's own event format, for the routes that take it.
export { fromLiteLLMEvent, type UsageEvent } from './normalize.js'

export interface UsageEvents {
  /** Stores events durably (committed before this resolves) and reports each one's outcome. */
  ingest: (events: UsageEvent[]) => Promise<WriteOutcome[]>
  /** Counts one rejected (invalid) event for the metrics. */
  rejected: (source: string, count?: number) => void
  /** One organization's counts by status and source, backlog age, last-minute rate and unmapped reasons. */
  stats: (organization: string) => Promise<StatsResponseBody>
  /** Emits 'committed' (count, and their mean latency when ingestion wrote them) after new events are stored. */
  signals: EventEmitter<{ committed: [number, number?] }>
  writer: UsageEventWriter
}

declare module 'fastify' {
  interface FastifyInstance {
    usageEvents: UsageEvents
  }
}

const emptyCounts = (): StatusCountsBody => ({ received: 0, pending: 0, failed: 0, forwarded: 0, dead: 0, unmapped: 0, not_billable: 0, lago_error: 0 })

export default fp(async function usageEvents (fastify) {
  const { config, db, log, metrics } = fastify
  const signals = new EventEmitter<{ committed: [number, number?] }>()
  const writer = new UsageEventWriter({
    write: async (events) => await insertUsageEvents(db, events),
    maxBatchRows: config.INGEST_MAX_BATCH_ROWS,
    maxConcurrentWrites: config.INGEST_MAX_CONCURRENT_WRITES,
    lingerMs: config.INGEST_LINGER_MS,
    onCommitted: (n, meanLatencyMs) => signals.emit('committed', n, meanLatencyMs),
    check: usageEventProblem,
    // Only reached when a check above misses something PostgreSQL refuses: worth a look, never a 500.
    onUnstorable: (event, err) => { log.warn({ err, requestId: event.requestId, source: event.source }, 'PostgreSQL refused a usage event: it alone failed its write') }
  })

  metrics.gauge('usage_events_unsent', 'Usage events stored but not yet in Lago (pending or awaiting retry)', async () => await countUnsent(db))
  metrics.gauge('usage_events_oldest_unsent_age_seconds', 'Age of the oldest usage event not yet in Lago', async () => await oldestUnsentAgeSeconds(db) ?? 0)

  fastify.decorate('usageEvents', {
    signals,
    writer,
    async ingest (events) {
      const outcomes = await writer.submit(events)
      // One inc per (source, outcome), in the order the pairs first occur.
      const tally = new Map<string, { source: string, outcome: WriteOutcome['status'], n: number }>()
      for (const [i, o] of outcomes.entries()) {
        const source = events[i].source
        const key = `${source}\u0000${o.status}`
        const entry = tally.get(key)
        if (entry === undefined) tally.set(key, { source, outcome: o.status, n: 1 })
        else entry.n++
      }
      for (const { source, outcome, n } of tally.values()) metrics.usageEvents.inc({ source, outcome }, n)
      return outcomes
    },
    rejected (source, count = 1) {
      metrics.usageEvents.inc({ source, outcome: 'rejected' }, count)
    },
    async stats (organization) {
      const [rows, oldest, lastMinute, unmapped] = await Promise.all([countByStatus(db, organization), oldestUnsentAgeSeconds(db, organization),
        receivedInLastMinute(db, organization), unmappedReasons(db, organization)])
      const totals = emptyCounts()
      const last24h = emptyCounts()
      const bySource: Record<string, StatusCountsBody> = {}
      for (const row of rows) {
        const source = (bySource[row.source] ??= emptyCounts())
        for (const [counts, n] of [[totals, row.total], [last24h, row.last_24h], [source, row.total]] as const) {
          counts.received += n
          counts[row.status] += n
        }
      }
      return {
        generated_at: new Date().toISOString(),
        totals,
        last_24h: last24h,
        by_source: bySource,
        oldest_pending_age_seconds: oldest,
        events_per_second_last_minute: Math.round((lastMinute / 60) * 1000) / 1000,
        unmapped_reasons: unmapped
      }
    }
  })

  // Requests holding events have finished before onClose runs; this catches any write still in flight.
  fastify.addHook('onClose', async () => { await writer.close() })
}, { name: 'usage-events', dependencies: ['db', 'metrics'] })
