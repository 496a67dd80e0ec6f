import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CustomerMappingInput, CustomerMappingList, CustomerMappingQuery, CustomerMappingSaved, mappingBody } from '../../../schemas/litellm.js'
import { errorResponses } from '../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['customer-mappings'],
      operationId: 'listCustomerMappings',
      summary: 'Which LiteLLM identity bills which Lago customer, in the caller\'s organization',
      security: [{ bearerAuth: [] }],
      querystring: CustomerMappingQuery,
      response: { 200: CustomerMappingList, ...errorResponses(400, 401, 503) }
    }
  }, async (request) => {
    const { identity, customer_id: customerId, limit, offset } = request.query
    const { rows, total } = await fastify.customerMappings.list({ organizationId: request.organizationId, identity, customerId, limit, offset })
    return { mappings: rows.map(mappingBody), total }
  })

  fastify.post('/', {
    schema: {
      tags: ['customer-mappings'],
      operationId: 'putCustomerMapping',
      summary: 'Bill the calls of a LiteLLM identity to a Lago customer (creates or replaces)',
      description: 'Applies to calls received from now on, and at once to stored calls that are waiting for a customer ' +
        '(status unmapped): those are queued for Lago (released_events). Calls already billed keep their customer. ' +
        '201 when created, 200 when an existing mapping was replaced. Mappings belong to the caller\'s organization ' +
        '(an admin key names one with X-Organization-Id): the same identity may bill another customer in another.',
      security: [{ bearerAuth: [] }],
      body: CustomerMappingInput,
      response: { 200: CustomerMappingSaved, 201: CustomerMappingSaved, ...errorResponses(400, 401, 503) }
    }
  }, async (request, reply) => {
    const { identity, value, customer_id: customerId } = request.body
    const { row, created, released } = await fastify.customerMappings.put(request.organizationId, identity, value, customerId)
    return reply.code(created ? 201 : 200).send({ mapping: mappingBody(row), released_events: released })
  })
}

export default plugin
