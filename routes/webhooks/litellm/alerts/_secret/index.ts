import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { AlertParams, AlertResponse } from '../../../../../schemas/litellm.js'
import { errorBody, errorResponses } from '../../../../../schemas/errors.js'

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest()

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  const secret = fastify.config.LITELLM_ALERTS_SECRET
  const expected = secret !== undefined ? sha256(secret) : undefined

  fastify.post('/', {
    // LiteLLM's alerting webhook sends no credentials: the secret is the path (../autohooks.ts asks no token).
    // The ingestion limit of ../autohooks.ts instead of the general one.
    config: { rateLimit: false },
    // Before the body is read: a wrong secret gets nothing read.
    onRequest: async (request, reply) => {
      const given = sha256((request.params as { secret: string }).secret)
      if (expected === undefined || !timingSafeEqual(given, expected)) {
        return await reply.code(404).send(errorBody(404, 'not_found', 'No route POST /webhooks/litellm/alerts/[redacted]'))
      }
    },
    schema: {
      tags: ['ingestion'],
      operationId: 'receiveLiteLLMAlert',
      summary: 'LiteLLM\'s alerting webhook (general_settings.alerting: ["webhook"]): spend_tracked events into the spend ledger',
      description: 'WEBHOOK_URL=https://<this service>/webhooks/litellm/alerts/<LITELLM_ALERTS_SECRET>. Answers exactly 200 ' +
        '(the only status LiteLLM counts as delivered). spend_tracked events (one customer call\'s cost) are recorded in a ' +
        'per-customer cost ledger, never billed; budget and key events are acknowledged. 404 when the secret is wrong or unset.',
      params: AlertParams,
      body: Type.Unknown(),
      response: { 200: AlertResponse, ...errorResponses(400, 404, 413, 415, 503) }
    }
  }, async (request, reply) => {
    return reply.code(200).send(await fastify.spendLedger.record(request.body, request.rawBody ?? ''))
  })
}

export default plugin
