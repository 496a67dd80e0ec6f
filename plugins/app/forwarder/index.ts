import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import { Forwarder, type ForwarderState } from './forwarder.js'
import { releaseMappedCustomers, unmappedCustomers } from './repository.js'

declare module 'fastify' {
  interface FastifyInstance {
    forwarder: {
      state: () => ForwarderState | { status: 'disabled', reason: string }
      /** Unmapped events of these customers (or of every customer now mapped) go back to the queue. */
      releaseUnmapped: (customerIds?: string[]) => Promise<number>
    }
  }
}

export default fp(async function forwarder (fastify) {
  const { config, db, lago, log, metrics, usageEvents, subscriptions } = fastify
  const disabledReason = !config.FORWARDER_ENABLED ? 'FORWARDER_ENABLED=false' : !lago.configured ? 'LAGO_API_KEY is not set' : null

  const settled = new Counter({
    name: 'forwarder_events_total',
    help: 'Usage events settled by the forwarder: forwarded, duplicate (Lago already had it), dead, retry, released',
    labelNames: ['outcome'] as const,
    registers: [metrics.registry]
  })

  const releaseUnmapped = async (customerIds?: string[]): Promise<number> => {
    const n = await releaseMappedCustomers(db, customerIds)
    if (n > 0) instance?.wake()
    return n
  }

  const instance = disabledReason === null
    ? new Forwarder({
      db,
      lago,
      resolveSubscriptions: async (ids) => await subscriptions.resolve(ids),
      log: log.child({ component: 'forwarder' }),
      metricCode: config.LAGO_METRIC_CODE,
      batchSize: config.FORWARDER_BATCH_SIZE,
      concurrency: config.FORWARDER_CONCURRENCY,
      pollIntervalMs: config.FORWARDER_POLL_INTERVAL_MS,
      leaseMs: config.FORWARDER_LEASE_MS,
      maxAttempts: config.MAX_ATTEMPTS,
      retry: { baseMs: config.RETRY_BASE_DELAY_MS, maxMs: config.RETRY_MAX_DELAY_MS },
      probe: { baseMs: config.LAGO_PROBE_INTERVAL_MS, maxMs: config.LAGO_PROBE_MAX_INTERVAL_MS },
      onSettled: (outcome, count) => settled.inc({ outcome }, count)
    })
    : null

  fastify.decorate('forwarder', {
    state: () => instance?.state() ?? { status: 'disabled' as const, reason: disabledReason ?? '' },
    releaseUnmapped
  })

  if (instance === null) {
    log.warn(`usage events are stored but not forwarded to Lago: ${disabledReason}`)
    return
  }

  const wake = (): void => instance.wake()
  // Unmapped customers may have been created in Lago directly: look them up again now and then.
  let recheck: NodeJS.Timeout | undefined
  const recheckUnmapped = async (): Promise<void> => {
    try {
      const customers = await unmappedCustomers(db, 100)
      if (customers.length > 0) {
        await subscriptions.resolve(customers)
        await releaseUnmapped(customers)
      }
    } catch (err) {
      log.warn({ err }, 'could not re-check unmapped usage events')
    }
  }

  fastify.addHook('onReady', async () => {
    usageEvents.signals.on('committed', wake)
    instance.start()
    recheck = setInterval(() => { void recheckUnmapped() }, config.UNMAPPED_RECHECK_INTERVAL_MS)
    recheck.unref()
  })
  fastify.addHook('onClose', async () => {
    clearInterval(recheck)
    usageEvents.signals.off('committed', wake)
    await instance.stop()
  })
}, { name: 'forwarder', dependencies: ['db', 'lago', 'usage-events', 'subscriptions', 'metrics'] })
