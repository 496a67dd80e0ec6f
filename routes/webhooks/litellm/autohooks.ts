import type { FastifyInstance } from 'fastify'

// Every ingestion webhook under /webhooks/litellm needs the webhook token or signature. Tokens (and the
// signature headers' form) are checked in onRequest, before the body is read; only the signature itself, which
// covers the raw body, is checked later, in preValidation. Then the ingestion rate limit, which each route takes
// instead of the general one (`config: { rateLimit: false }`). alerts/ has its own autohooks.ts (no token).
export default async function webhookAuthHooks (fastify: FastifyInstance): Promise<void> {
  fastify.addHook('onRoute', fastify.ingestionRateLimit.onRoute)
  fastify.addHook('onRequest', async (request) => { fastify.authenticateWebhook(request) })
  fastify.addHook('onRequest', fastify.ingestionRateLimit.onRequest)
  fastify.addHook('preValidation', async (request) => { fastify.verifyWebhookSignature(request) })
}
