import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { HealthResponse, LivenessResponse, ReadinessResponse, type ChecksBody } from '../../schemas/health.js'

// Probes and scrapers must never be throttled into a restart or a gap in the metrics.
const NOT_RATE_LIMITED = { rateLimit: false } as const

const uptime = (): number => Math.round(process.uptime())

// Redis is optional (rate limits and cache fall back in-process): it never makes the service unready.
const ready = (checks: ChecksBody): boolean => checks.database.status === 'up'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    config: NOT_RATE_LIMITED,
    schema: {
      tags: ['health'],
      operationId: 'getHealth',
      summary: 'Summary: dependencies, ingestion backlog, forwarding to Lago',
      response: { 200: HealthResponse }
    }
  }, async () => {
    const checks = await fastify.health.check()
    const forwarder = fastify.forwarder.state()
    const organizations = checks.database.status === 'up'
      ? (await fastify.forwarder.organizations()).map((o) => ({ ...o, bootstrap: fastify.bootstrap.state(o.id) }))
      : []
    // Lago trouble degrades the service (events wait) but does not stop ingestion, so readiness ignores it. Any
    // organization's forwarding paused is worth a look; the others keep forwarding meanwhile.
    const forwarding = (status: string): boolean => status === 'running' || status === 'disabled'
    const healthy = ready(checks) && checks.redis.status !== 'down' &&
      forwarding(forwarder.status) && organizations.every((o) => forwarding(o.forwarder.status))
    return {
      status: healthy ? 'ok' as const : 'degraded' as const,
      uptime_seconds: uptime(),
      checks,
      database: fastify.database,
      ingestion: fastify.usageEvents.writer.backlog,
      forwarder,
      bootstrap: fastify.bootstrap.state(),
      organizations
    }
  })

  fastify.get('/live', {
    config: NOT_RATE_LIMITED,
    schema: {
      tags: ['health'],
      operationId: 'getLiveness',
      summary: 'The process is up and serving (no dependency checks)',
      response: { 200: LivenessResponse }
    }
  }, async () => ({ status: 'ok' as const, uptime_seconds: uptime() }))

  fastify.get('/ready', {
    config: NOT_RATE_LIMITED,
    schema: {
      tags: ['health'],
      operationId: 'getReadiness',
      summary: 'PostgreSQL is reachable; 503 naming what is down otherwise. Redis is optional: its state is shown, never a 503',
      response: { 200: ReadinessResponse, 503: ReadinessResponse }
    }
  }, async (_request, reply) => {
    const checks = await fastify.health.check()
    const isReady = ready(checks)
    return reply.code(isReady ? 200 : 503).send({ status: isReady ? 'ready' : 'not_ready', checks })
  })

  fastify.get('/metrics', {
    config: NOT_RATE_LIMITED,
    schema: {
      tags: ['health'],
      operationId: 'getMetrics',
      summary: 'Prometheus metrics (text exposition format)',
      produces: ['text/plain'],
      response: { 200: Type.String() }
    }
  }, async (_request, reply) => {
    const { registry } = fastify.metrics
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}

export default plugin
