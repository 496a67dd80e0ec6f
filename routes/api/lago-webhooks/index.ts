import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LagoWebhookList, LagoWebhookListQuery } from '../../../schemas/lago-webhooks.js'
import { errorResponses } from '../../../schemas/errors.js'
import { ORGANIZATION_SCOPE } from '../../../schemas/organizations.js'
import { listOf } from '../../../plugins/external/config.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['lago-webhooks'],
      operationId: 'listLagoWebhooks',
      summary: 'Webhooks received from Lago, newest first',
      description: 'Every verified delivery, once per X-Lago-Unique-Key, with when it was acted on. Filter by type to see ' +
        'notices an operator may act on: alert.triggered, wallet.depleted_ongoing_balance, subscription.usage_threshold_reached. ' +
        ORGANIZATION_SCOPE,
      querystring: LagoWebhookListQuery,
      response: { 200: LagoWebhookList, ...errorResponses(400, 404, 503) }
    }
  }, async (request) => {
    const { page = 1, per_page: perPage = 20, type, customer_id: customerId, from, to } = request.query
    const { rows, total } = await fastify.lagoWebhooks.list({
      organization: request.organizationId,
      types: type !== undefined ? listOf(type) : undefined,
      customerId,
      from: from !== undefined ? new Date(from) : undefined,
      to: to !== undefined ? new Date(to) : undefined,
      page,
      perPage
    })
    const totalPages = Math.ceil(total / perPage)
    return {
      webhooks: rows.map((r) => ({
        ...r,
        received_at: r.received_at.toISOString(),
        processed_at: r.processed_at?.toISOString() ?? null
      })),
      meta: { page, per_page: perPage, total_count: total, total_pages: totalPages, next_page: page < totalPages ? page + 1 : null, prev_page: page > 1 ? page - 1 : null }
    }
  })
}

export default plugin
