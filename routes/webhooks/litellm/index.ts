import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { IngestResponse, LiteLLMUsageEvent } from '../../../schemas/usage-events.js'
import { RequestIdConflictError, errorResponses } from '../../../schemas/errors.js'
import { WEBHOOK_AUTH } from '../../../schemas/common.js'
import { fromLiteLLMEvent } from '../../../plugins/app/usage-events/normalize.js'

const SOURCE = 'webhook'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    config: { rateLimitGroup: 'ingestion' },
    schema: {
      tags: ['ingestion'],
      security: WEBHOOK_AUTH,
      operationId: 'ingestUsageEvent',
      summary: 'Store one LiteLLM usage event',
      description: 'Answers 202 once the event is committed to PostgreSQL, 200 when this request_id is already stored ' +
        'with the same content, 409 when it is stored with different billing content.',
      body: LiteLLMUsageEvent,
      response: { 200: IngestResponse, 202: IngestResponse, ...errorResponses(400, 401, 409, 413, 415, 503) }
    },
    onResponse: async (_request, reply) => {
      if (reply.statusCode === 400) fastify.usageEvents.rejected(SOURCE)
    }
  }, async (request, reply) => {
    const event = fromLiteLLMEvent(request.body, SOURCE, new Date())
    const [outcome] = await fastify.usageEvents.ingest([event])
    if (outcome.status === 'conflict') throw new RequestIdConflictError(event.requestId)
    return reply.code(outcome.status === 'accepted' ? 202 : 200)
      .send({ status: outcome.status, request_id: event.requestId, id: outcome.id })
  })
}

export default plugin
