import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface Metrics {
  registry: Registry
  usageEvents: Counter<'source' | 'outcome'>
  /** Registers a gauge whose value is read at scrape time. */
  gauge: (name: string, help: string, read: () => Promise<number>) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/** One registry per app instance, so tests that build many apps never share or collide on metrics. */
export default fp(async function metrics (fastify) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })

  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry]
  })
  const usageEvents = new Counter({
    name: 'usage_events_total',
    help: 'Usage events received, by source and outcome (accepted, duplicate, conflict, rejected)',
    labelNames: ['source', 'outcome'] as const,
    registers: [registry]
  })

  fastify.decorate('metrics', {
    registry,
    usageEvents,
    gauge (name, help, read) {
      // eslint-disable-next-line no-new
      new Gauge({ name, help, registers: [registry], async collect () { this.set(await read()) } })
    }
  })

  fastify.addHook('onResponse', async (request, reply) => {
    // Unmatched URLs share one label so that scanners cannot blow up the label cardinality.
    const route = request.routeOptions.url ?? 'unmatched'
    httpDuration.observe({ method: request.method, route, status_code: reply.statusCode }, reply.elapsedTime / 1000)
  })
}, { name: 'metrics' })
