import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RetryRequest, RetryResponse } from '../../../schemas/forwarding.js'
import { InvalidRangeError, errorBody, errorResponses } from '../../../schemas/errors.js'
import { BEARER_AUTH } from '../../../schemas/common.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    onRequest: fastify.requireApiKey,
    // "Retry all" must be said: a missing or null body, or a client that dropped its filters, is not a request to
    // retry everything.
    preValidation: async (request, reply) => {
      if (request.body === undefined || request.body === null) return await reply.code(400).send(filterRequired())
    },
    schema: {
      tags: ['forwarding'],
      operationId: 'retryUsageEvents',
      summary: 'Put failed and dead usage events back in the forwarding queue',
      description: 'Delivered events are never touched, so a retry can never bill twice. Filters combine (AND). ' +
        'Only the caller\'s organization\'s events are retried (an admin key: the one named by X-Organization-Id, ' +
        'default when absent); "all" means all of that organization\'s.',
      security: BEARER_AUTH,
      body: RetryRequest,
      response: { 200: RetryResponse, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request, reply) => {
    const { all, request_ids: requestIds, customer_id: customerId, from, to, reason, statuses: named } = request.body
    const filtered = requestIds !== undefined || customerId !== undefined || from !== undefined || to !== undefined || reason !== undefined
    const statuses = named ?? ['failed', 'dead']
    // Naming statuses (e.g. ["lago_error"]) is a deliberate choice too; only a missing or empty selection is refused.
    if (!filtered && named === undefined && all !== true) return await reply.code(400).send(filterRequired())
    if (filtered && all === true) return await reply.code(400).send(errorBody(400, 'retry_filter_conflict', '"all": true cannot be combined with filters: send one or the other'))
    if (from !== undefined && to !== undefined && Date.parse(from) > Date.parse(to)) throw new InvalidRangeError(`from (${from}) is after to (${to})`)
    const retried = await fastify.forwarder.retry({
      organization: request.organizationId,
      statuses,
      requestIds,
      customerId,
      reason,
      from: from !== undefined ? new Date(from) : undefined,
      to: to !== undefined ? new Date(to) : undefined
    })
    return { retried }
  })
}

function filterRequired () {
  return errorBody(400, 'retry_filter_required', 'Say which events to retry: filters (request_ids, customer_id, reason, from, to, statuses), or {"all": true} for every failed and dead event')
}

export default plugin
