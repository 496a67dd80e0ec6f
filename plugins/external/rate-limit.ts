import fp from 'fastify-plugin'
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyRequest, RouteOptions, onRequestHookHandler, onRouteHookHandler } from 'fastify'
import { ErrorResponse, RateLimitedError } from '../../schemas/errors.js'
import { fallbackStore } from './rate-limit-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The usage-event endpoints' own, much higher limit (INGEST_RATE_LIMIT_MAX per client IP), one counter shared by
     * every ingestion route. A folder (or route file) of ingestion routes adds both hooks; each route says
     * `config: { rateLimit: false }` to leave the general limit.
     */
    ingestionRateLimit: {
      onRequest: onRequestHookHandler
      /** Declares the 429 answer in the route's schema when the limit is on. */
      onRoute: onRouteHookHandler
    }
  }
}

/** Authenticated requests (request.apiKey set by the /api auth hook) count per key, the others per client IP. */
function rateLimitKey (request: FastifyRequest): string {
  return request.apiKey !== undefined ? `key:${request.apiKey.id}` : `ip:${normalizeIP(request.ip)}`
}

/**
 * @fastify/rate-limit, answering 429 in the service's error shape with Retry-After. Every route gets the general
 * limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_MS) unless its config says `rateLimit: false` (the ingestion routes,
 * which take fastify.ingestionRateLimit instead). Counters live in Redis (`rate-limit:ip:<ip>`, `rate-limit:key:<api key id>`:
 * limits hold across replicas; the ingestion limit's are always in-process, per instance), or in-process without
 * REDIS_URL and while Redis is down or slow: the limiter protects capacity and guards no data, so Redis trouble
 * must never refuse a request.
 */
export default fp(async function rateLimitPlugin (fastify) {
  const { config } = fastify
  const common = {
    timeWindow: config.RATE_LIMIT_WINDOW_MS,
    errorResponseBuilder: (_request: FastifyRequest, context: { after: string }) => new RateLimitedError(context.after)
  }

  // Every limited route can answer 429: say so in its schema (serialization and the OpenAPI document).
  const declare429 = (route: RouteOptions): void => {
    const responses = route.schema?.response as Record<string, unknown> | undefined
    if (responses !== undefined && responses[429] === undefined) responses[429] = ErrorResponse
  }
  fastify.addHook('onRoute', (route) => { if (route.config?.rateLimit !== false) declare429(route) })

  await fastify.register(rateLimit, {
    ...common,
    global: true,
    max: config.RATE_LIMIT_MAX,
    store: fallbackStore(fastify.redis, 'rate-limit:'),
    keyGenerator: rateLimitKey
  })

  const ingestionLimited = config.INGEST_RATE_LIMIT_MAX > 0
  fastify.decorate('ingestionRateLimit', {
    // Created once: every ingestion route shares its counter. Counted in this process (per instance, `inProcess`
    // read by the store): a Redis round trip on every event cost a third of the single-event throughput, for a
    // limit that only guards capacity.
    onRequest: ingestionLimited
      ? fastify.rateLimit({ ...common, max: config.INGEST_RATE_LIMIT_MAX, keyGenerator: (r: FastifyRequest) => `ingestion:${rateLimitKey(r)}`, inProcess: true } as Parameters<typeof fastify.rateLimit>[0])
      : async () => {},
    onRoute: (route) => { if (ingestionLimited) declare429(route) }
  })
}, { name: 'rate-limit', dependencies: ['config', 'redis'] })
