import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { WEBHOOK_AUTH } from '../../../../../schemas/common.js'
import { CreateBatchBody, LagoBatchResponse, lagoErrorResponses } from '../../../../../schemas/lago-events.js'
import { createLagoBatch, ingestContext } from '../lago-api.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    // The ingestion limit of ../autohooks.ts instead of the general one; text is checked field by field by the
    // readers (lago-event.ts, cloud-event.ts) and refused in Lago's shape.
    config: { rateLimit: false, ownBodyTextChecks: true },
    schema: {
      tags: ['lago-compatible'],
      operationId: 'createLagoBatchEvents',
      summary: 'Drop-in for Lago\'s POST /api/v1/events/batch',
      description: 'Up to 100 Lago events ({"events": […]}), validated together like Lago: any invalid event (or a ' +
        'transaction_id twice) stores none of them and is answered 422 with error_details keyed by index. A ' +
        'transaction_id already stored with the same content is accepted again (a resend).',
      security: WEBHOOK_AUTH,
      body: CreateBatchBody,
      response: { 200: LagoBatchResponse, ...lagoErrorResponses(400, 401, 413, 415, 422, 503) }
    }
  }, async (request, reply) => {
    const answer = await createLagoBatch(request.body, ingestContext(fastify, request))
    return await reply.code(answer.status).send(answer.body)
  })
}

export default plugin
