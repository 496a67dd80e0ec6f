import type { FastifyInstance } from 'fastify'
import apiKeyHooks from '../autohooks.js'

/**
 * Managing organizations needs an admin key (ADMIN_API_KEYS). A folder's autohooks replace its parent's, so the
 * /api ones (API key, body limit, OpenAPI security) are applied first, then the admin check.
 */
export default async function adminHooks (fastify: FastifyInstance): Promise<void> {
  await apiKeyHooks(fastify)
  fastify.addHook('onRoute', (route) => {
    const responses = route.schema?.response as Record<string, unknown> | undefined
    if (responses !== undefined) responses[403] ??= responses[401]
  })
  // The folder's hook may run before /api's authentication: authenticate here when it has not yet.
  fastify.addHook('onRequest', async (request) => {
    if (request.apiKey === undefined) await fastify.authenticate(request)
    await fastify.requireAdmin(request)
  })
}
