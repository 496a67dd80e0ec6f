import type { FastifyInstance } from 'fastify'
import { BEARER_AUTH } from '../../schemas/common.js'
import { ErrorResponse } from '../../schemas/errors.js'

/**
 * Everything under /api needs an API key (fastify.authenticate), has the API body limit, and says so in the
 * OpenAPI document (bearerAuth, 401; 403 and 404 for X-Organization-Id). The Lago-compatible /api/v1 is another tree (routes/api/v1, its own
 * autohooks.ts, loaded by app.ts on its own): nothing here opts out.
 */
export default async function apiKeyHooks (fastify: FastifyInstance): Promise<void> {
  fastify.addHook('onRoute', (route) => {
    route.bodyLimit ??= fastify.config.API_BODY_LIMIT_BYTES
    if (route.schema === undefined) return
    route.schema.security ??= BEARER_AUTH
    const responses = route.schema.response as Record<string, unknown> | undefined
    if (responses !== undefined) {
      responses[401] ??= ErrorResponse
      // X-Organization-Id: another organization than the key's own (403 admin_required) or an unknown one (404).
      responses[403] ??= ErrorResponse
      responses[404] ??= ErrorResponse
    }
  })

  // Before the body is read. The route's rate limit (per key) runs after this, keyed by request.apiKey.
  fastify.addHook('onRequest', fastify.requireApiKey)
}
