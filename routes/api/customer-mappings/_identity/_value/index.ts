import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { CustomerMapping, CustomerMappingParams } from '../../../../../schemas/litellm.js'
import { CustomerMappingNotFoundError, errorResponses } from '../../../../../schemas/errors.js'
import { mappingBody } from '../../../../../plugins/app/litellm/mapping-repository.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['customer-mappings'],
      operationId: 'getCustomerMapping',
      summary: 'One customer mapping',
      security: [{ bearerAuth: [] }],
      params: CustomerMappingParams,
      response: { 200: CustomerMapping, ...errorResponses(400, 401, 404, 503) }
    }
  }, async (request) => {
    const { identity, value } = request.params
    const { rows } = await fastify.litellm.mappings.list({ identity, value, limit: 1, offset: 0 })
    if (rows.length === 0) throw new CustomerMappingNotFoundError(identity, value)
    return mappingBody(rows[0])
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
    if (!await fastify.litellm.mappings.remove(identity, value)) throw new CustomerMappingNotFoundError(identity, value)
    return reply.code(204).send(null)
  })
}

export default plugin
