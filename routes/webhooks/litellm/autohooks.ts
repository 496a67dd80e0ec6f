import type { FastifyInstance } from 'fastify'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route authenticates its callers itself (LiteLLM's alert webhook: a secret in the URL). */
    skipWebhookAuth?: boolean
  }
}

// Every ingestion webhook under /webhooks/litellm needs the webhook token or signature. preValidation: the
// signature covers the raw body, which exists only once the body has been read.
export default async function webhookAuthHooks (fastify: FastifyInstance): Promise<void> {
  fastify.addHook('preValidation', async (request) => {
    if (request.routeOptions.config.skipWebhookAuth === true) return
    fastify.verifyWebhook(request)
  })
}
