import fp from 'fastify-plugin'
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyRequest, RouteOptions, onRequestHookHandler } from 'fastify'
import { ErrorResponse, RateLimitedError } from '../../schemas/errors.js'

/** The rate-limit groups a route can join with `config: { rateLimitGroup }`. */
export type RateLimitGroup = 'ingestion'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * 'ingestion': the usage-event endpoints' own, much higher limit (INGEST_RATE_LIMIT_MAX per client IP), one
     * counter shared by every route of the group instead of the general limit.
     */
    rateLimitGroup?: RateLimitGroup
  }
}

/** Authenticated requests (request.apiKey set by the /api auth hook) count per key, the others per client IP. */
function rateLimitKey (request: FastifyRequest): string {
  return request.apiKey !== undefined ? `key:${request.apiKey.id}` : `ip:${normalizeIP(request.ip)}`
}

/**
 * @fastify/rate-limit on the shared Redis (limits hold across replicas), answering 429 in the service's error
 * shape with Retry-After. Every route gets the general limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_MS) unless
 * its config says `rateLimit: false` or `rateLimitGroup: 'ingestion'`.
 *
 * skipOnError: true, on purpose. The limiter protects capacity; it guards no data. With Redis unreachable,
 * refusing requests would turn a Redis outage into an outage of ingestion (which must never lose an event) and of
 * the API, so requests pass unlimited meanwhile; the Redis client logs the outage and /health/ready reports it.
 */
export default fp(async function rateLimitPlugin (fastify) {
  const { config } = fastify
  const common = {
    timeWindow: config.RATE_LIMIT_WINDOW_MS,
    errorResponseBuilder: (_request: FastifyRequest, context: { after: string }) => new RateLimitedError(context.after)
  }

  let ingestionLimit: onRequestHookHandler | undefined
  const ingestionLimited = config.INGEST_RATE_LIMIT_MAX > 0
  const limited = (route: RouteOptions): boolean => route.config?.rateLimitGroup !== undefined ? ingestionLimited : route.config?.rateLimit !== false

  // Registered before the plugin's own onRoute hook, which must see `rateLimit: false` on grouped routes.
  fastify.addHook('onRoute', (route) => {
    if (route.config?.rateLimitGroup === 'ingestion') {
      route.config.rateLimit = false
      if (ingestionLimited) {
        // Created once: every route of the group shares its counter.
        ingestionLimit ??= fastify.rateLimit({ ...common, max: config.INGEST_RATE_LIMIT_MAX, keyGenerator: (r) => `ingestion:${rateLimitKey(r)}` })
        route.onRequest = [ingestionLimit, ...(Array.isArray(route.onRequest) ? route.onRequest : route.onRequest !== undefined ? [route.onRequest] : [])]
      }
    }
    // Every limited route can answer 429: say so in its schema (serialization and the OpenAPI document).
    const responses = route.schema?.response as Record<string, unknown> | undefined
    if (responses !== undefined && limited(route) && responses[429] === undefined) responses[429] = ErrorResponse
  })

  await fastify.register(rateLimit, {
    ...common,
    global: true,
    max: config.RATE_LIMIT_MAX,
    redis: fastify.redis,
    nameSpace: 'rate-limit:',
    skipOnError: true,
    keyGenerator: rateLimitKey
  })
}, { name: 'rate-limit', dependencies: ['config', 'redis'] })
