import fp from 'fastify-plugin'
import { Histogram } from 'prom-client'
import { LagoClient } from './client.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The Lago API client (one keep-alive undici Pool to LAGO_API_URL). */
    lago: LagoClient
  }
}

export default fp(async function lago (fastify) {
  const { config, metrics } = fastify
  const duration = new Histogram({
    name: 'lago_request_duration_seconds',
    help: 'HTTP attempts to Lago by operation and outcome (status code, or the unavailability kind)',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [metrics.registry]
  })

  const client = new LagoClient({
    baseUrl: config.LAGO_API_URL,
    apiKey: config.LAGO_API_KEY,
    headersTimeoutMs: config.LAGO_TIMEOUT_MS,
    requestTimeoutMs: config.LAGO_TIMEOUT_MS,
    connectTimeoutMs: Math.min(config.LAGO_TIMEOUT_MS, 5_000),
    connections: config.LAGO_CONNECTIONS,
    maxRetryAfterMs: config.LAGO_RETRY_AFTER_MAX_MS,
    observer (attempt) {
      const outcome = attempt.statusCode !== null ? String(attempt.statusCode) : (attempt.error !== undefined && 'kind' in attempt.error ? attempt.error.kind : 'error')
      duration.observe({ operation: attempt.operation, outcome }, attempt.durationMs / 1000)
      // Lago down, throttling or refusing the key is worth a warning; a 404 or 422 is an answer the caller handles.
      if (attempt.error !== undefined && (attempt.statusCode === null || attempt.statusCode >= 500 || [401, 403, 408, 425, 429].includes(attempt.statusCode))) {
        fastify.log.warn({ lago: { operation: attempt.operation, path: attempt.path, statusCode: attempt.statusCode, durationMs: Math.round(attempt.durationMs) }, err: attempt.error }, 'Lago request failed')
      }
    }
  })
  // The service must start without Lago credentials (ingestion still works); calls then fail with
  // LagoNotConfiguredError, and this says why at boot.
  if (!client.configured) fastify.log.warn('LAGO_API_KEY is not set: usage events are stored but nothing can be sent to Lago')

  fastify.decorate('lago', client)
  fastify.addHook('onClose', async () => { await client.close() })
}, { name: 'lago', dependencies: ['config', 'metrics'] })
