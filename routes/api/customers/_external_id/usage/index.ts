import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CustomerParams } from '../../../../../schemas/customers.js'
import { UsageQuery, UsageResponse } from '../../../../../schemas/usage.js'
import { errorResponses } from '../../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['usage'],
      operationId: 'getCustomerUsage',
      summary: 'A customer\'s usage from the stored events, by model, day or provider',
      description: 'Requests, tokens and exact cost over [from, to) from the usage events this service stored, ' +
        'whether or not they have reached Lago yet. Failed LLM calls are not usage. Answers without Lago. In an organization other ' +
        'than default, 404 for a customer it has neither stored events nor a record of (default answers zeros).',
      params: CustomerParams,
      querystring: UsageQuery,
      response: { 200: UsageResponse, ...errorResponses(400, 404, 503) }
    }
  }, async (request) => {
    const { from, to, group_by: groupBy } = request.query
    return await (await fastify.billing.for(request.organizationId)).usage.stored(request.params.external_id, { from, to, groupBy })
  })
}

export default plugin
