import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RetryRequest, RetryResponse } from '../../../schemas/forwarding.js'
import { errorResponses } from '../../../schemas/errors.js'
import { BEARER_AUTH } from '../../../schemas/common.js'
import { retryEvents } from '../../../plugins/app/forwarder/repository.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    onRequest: fastify.requireApiKey,
    // No body means no filter (the seed README calls it so): every failed and dead event.
    preValidation: async (request) => { request.body ??= {} },
    schema: {
      tags: ['forwarding'],
      operationId: 'retryUsageEvents',
      summary: 'Put failed and dead usage events back in the forwarding queue',
      description: 'Delivered events are never touched, so a retry can never bill twice. Filters combine (AND).',
      security: BEARER_AUTH,
      body: RetryRequest,
      response: { 200: RetryResponse, ...errorResponses(400, 401, 503) }
    }
  }, async (request) => {
    const { request_ids: requestIds, customer_id: customerId, from, to, statuses = ['failed', 'dead'] } = request.body
    const retried = await retryEvents(fastify.db, {
      statuses,
      requestIds,
      customerId,
      from: from !== undefined ? new Date(from) : undefined,
      to: to !== undefined ? new Date(to) : undefined
    })
    if (retried > 0) fastify.usageEvents.signals.emit('committed', retried)
    return { retried }
  })
}

export default plugin
