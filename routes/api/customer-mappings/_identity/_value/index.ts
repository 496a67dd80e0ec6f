import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { CustomerMapping, CustomerMappingParams, mappingBody } from '../../../../../schemas/litellm.js'
import { CustomerMappingNotFoundError, errorResponses } from '../../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['customer-mappings'],
      operationId: 'getCustomerMapping',
      summary: 'One customer mapping of the caller\'s organization (another organization\'s is a 404)',
      security: [{ bearerAuth: [] }],
      params: CustomerMappingParams,
      response: { 200: CustomerMapping, ...errorResponses(400, 401, 404, 503) }
    }
  }, async (request) => {
    const { identity, value } = request.params
    const row = await fastify.customerMappings.get(request.organizationId, identity, value)
    if (row === undefined) throw new CustomerMappingNotFoundError(identity, value)
    return mappingBody(row)
  })

  fastify.delete('/', {
    schema: {
      tags: ['customer-mappings'],
      operationId: 'deleteCustomerMapping',
      summary: 'Remove a customer mapping (calls already stored keep their customer)',
      security: [{ bearerAuth: [] }],
      params: CustomerMappingParams,
      response: { 204: Type.Null(), ...errorResponses(400, 401, 404, 503) }
    }
  }, async (request, reply) => {
    const { identity, value } = request.params
    if (!await fastify.customerMappings.remove(request.organizationId, identity, value)) throw new CustomerMappingNotFoundError(identity, value)
    return reply.code(204).send(null)
  })
}

export default plugin
