import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { HealthResponse, LivenessResponse, ReadinessResponse } from '../../schemas/health.js'

// Probes and scrapers must never be throttled into a restart or a gap in the metrics.
const NOT_RATE_LIMITED = { rateLimit: false } as const

const uptime = (): number => Math.round(process.uptime())

const allUp = (checks: Record<string, { status: string }>): boolean => Object.values(checks).every((c) => c.status === 'up')

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
    // Lago trouble degrades the service (events wait) but does not stop ingestion, so readiness ignores it.
    const healthy = allUp(checks) &&
      (forwarder.status === 'running' || forwarder.status === 'disabled')
    return {
      status: healthy ? 'ok' as const : 'degraded' as const,
      uptime_seconds: uptime(),
      checks,
      ingestion: fastify.usageEvents.writer.backlog,
      forwarder,
      bootstrap: fastify.bootstrap.state()
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
      summary: 'PostgreSQL and Redis are reachable; 503 naming what is down otherwise',
      response: { 200: ReadinessResponse, 503: ReadinessResponse }
    }
  }, async (_request, reply) => {
    const checks = await fastify.health.check()
    const ready = allUp(checks)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks })
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
