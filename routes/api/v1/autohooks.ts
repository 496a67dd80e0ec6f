import type { FastifyInstance } from 'fastify'
import { lagoErrorHandler } from './events/lago-api.js'

/**
 * The Lago-compatible API (LiteLLM's lago and openmeter callbacks), loaded by app.ts as its own tree: not under
 * /api's API key. Callers authenticate with the ingestion credentials (LiteLLM sends `Authorization: Bearer
 * $LAGO_API_KEY`, set to a WEBHOOK_TOKENS token), count against the ingestion rate limit, and get errors in Lago's
 * shapes.
 */
export default async function lagoCompatibleHooks (fastify: FastifyInstance): Promise<void> {
  fastify.addHook('onRoute', fastify.ingestionRateLimit.onRoute)
  fastify.addHook('onRequest', fastify.ingestionRateLimit.onRequest)
  // The token before the body is read; a signature (which covers the body) once it is.
  fastify.addHook('onRequest', async (request) => { fastify.authenticateWebhook(request) })
  fastify.addHook('preValidation', async (request) => { fastify.verifyWebhookSignature(request) })
  fastify.setErrorHandler(lagoErrorHandler)
}
