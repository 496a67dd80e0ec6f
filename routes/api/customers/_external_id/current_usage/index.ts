import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CustomerParams } from '../../../../../schemas/customers.js'
import { CurrentUsage, CurrentUsageQuery } from '../../../../../schemas/usage.js'
import { errorResponses } from '../../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['usage'],
      operationId: 'getCustomerCurrentUsage',
      summary: 'The open billing period as Lago computes it',
      description: 'What the customer\'s next invoice says so far, per charge. 409 no_active_subscription when it has none.',
      params: CustomerParams,
      querystring: CurrentUsageQuery,
      response: { 200: CurrentUsage, ...errorResponses(400, 404, 409, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).usage.current(request.params.external_id, request.query.subscription_external_id))
}

export default plugin
