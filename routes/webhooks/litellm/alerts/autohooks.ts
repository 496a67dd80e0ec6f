import type { FastifyInstance } from 'fastify'

// LiteLLM's alerting webhook sends no credentials: the secret is the path, checked by the route itself
// (_secret/index.ts). In place of ../autohooks.ts (no token asked), only the ingestion rate limit.
export default async function alertHooks (fastify: FastifyInstance): Promise<void> {
  fastify.addHook('onRoute', fastify.ingestionRateLimit.onRoute)
  fastify.addHook('onRequest', fastify.ingestionRateLimit.onRequest)
}
