import type { FastifyInstance } from 'fastify'
import { BEARER_AUTH } from '../../schemas/common.js'
import { ErrorResponse } from '../../schemas/errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route under /api that authenticates by other means (the Lago-compatible ingestion endpoints). */
    skipApiKeyAuth?: boolean
  }
}

/**
 * Everything under /api needs an API key (fastify.authenticate), has the API body limit, and says so in the
 * OpenAPI document (bearerAuth, 401). A route opts out with `config: { skipApiKeyAuth: true }`.
 */
export default async function apiKeyHooks (fastify: FastifyInstance): Promise<void> {
  fastify.addHook('onRoute', (route) => {
    if (route.config?.skipApiKeyAuth === true) return
    route.bodyLimit ??= fastify.config.API_BODY_LIMIT_BYTES
    if (route.schema === undefined) return
    route.schema.security ??= BEARER_AUTH
    const responses = route.schema.response as Record<string, unknown> | undefined
    if (responses !== undefined) responses[401] ??= ErrorResponse
  })

  // Before the body is read. The route's rate limit (per key) runs after this, keyed by request.apiKey.
  fastify.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config.skipApiKeyAuth === true) return
    await fastify.requireApiKey(request, reply)
  })
}
