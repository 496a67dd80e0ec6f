import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Customer, CustomerParams, CustomerUpdate } from '../../../../schemas/customers.js'
import { BODY_ERRORS, LAGO_ERRORS, errorResponses } from '../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['customers'],
      operationId: 'getCustomer',
      summary: 'A customer and its current subscription',
      params: CustomerParams,
      response: { 200: Customer, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).customers.get(request.params.external_id))

  fastify.patch('/', {
    schema: {
      tags: ['customers'],
      operationId: 'updateCustomer',
      summary: 'Change a customer\'s fields or plan',
      description: 'Only the fields sent change. plan_code changes the plan of its subscription (an upgrade at once, a ' +
        'downgrade at the end of the period, as Lago does), or subscribes it when it has none.',
      params: CustomerParams,
      body: CustomerUpdate,
      response: { 200: Customer, ...errorResponses(...BODY_ERRORS, ...LAGO_ERRORS) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).customers.update(request.params.external_id, request.body))

  fastify.delete('/', {
    schema: {
      tags: ['customers'],
      operationId: 'deleteCustomer',
      summary: 'Delete a customer',
      description: 'Lago terminates its subscriptions (invoicing what they owe) and keeps its invoices; the usage ' +
        'events stored here stay (GET .../usage still answers).',
      params: CustomerParams,
      response: { 200: Customer, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).customers.remove(request.params.external_id))
}

export default plugin
