import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { IngestResponse, LiteLLMUsageEvent } from '../../../schemas/usage-events.js'
import { RequestIdConflictError, errorBody, errorResponses } from '../../../schemas/errors.js'
import { WEBHOOK_AUTH } from '../../../schemas/common.js'
import { fromLiteLLMEvent } from '../../../plugins/app/usage-events/index.js'

const SOURCE = 'webhook'
// Requests whose rejection the ingestion already counted (an event the writer refused).
const countedRejections = new WeakSet<object>()

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    // The ingestion limit of ./autohooks.ts instead of the general one.
    config: { rateLimit: false },
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
    onResponse: async (request, reply) => {
      if (reply.statusCode === 400 && !countedRejections.has(request)) fastify.usageEvents.rejected(SOURCE)
    }
  }, async (request, reply) => {
    const event = fromLiteLLMEvent(request.body, SOURCE, new Date())
    // Set on the new object, not spread into a copy: a spread is the slow path of object creation, per event.
    event.organizationId = request.organizationId
    const [outcome] = await fastify.usageEvents.ingest([event])
    if (outcome.status === 'rejected') {
      countedRejections.add(request)
      return await reply.code(400).send(errorBody(400, 'invalid_event', `body field ${outcome.field} ${outcome.message}`, [{ field: outcome.field, message: outcome.message }]))
    }
    if (outcome.status === 'conflict') throw new RequestIdConflictError(event.requestId)
    return reply.code(outcome.status === 'accepted' ? 202 : 200)
      .send({ status: outcome.status, request_id: event.requestId, id: outcome.id })
  })
}

export default plugin
