import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Customer, CustomerCreate, CustomerList, CustomerListQuery } from '../../../schemas/customers.js'
import { BODY_ERRORS, LAGO_ERRORS, errorResponses } from '../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    schema: {
      tags: ['customers'],
      operationId: 'upsertCustomer',
      summary: 'Create or update a customer, and subscribe it to a plan',
      description: 'Idempotent: the same body again changes nothing. Creates the Lago customer or updates the fields ' +
        'sent; with plan_code, subscribes it (subscription external_id = its external_id) or changes its plan. Usage ' +
        'events that were waiting for its subscription are then sent to Lago.',
      body: CustomerCreate,
      response: { 200: Customer, ...errorResponses(...BODY_ERRORS, ...LAGO_ERRORS) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).customers.upsert(request.body))

  fastify.get('/', {
    schema: {
      tags: ['customers'],
      operationId: 'listCustomers',
      summary: 'List customers',
      querystring: CustomerListQuery,
      response: { 200: CustomerList, ...errorResponses(400, 502, 503) }
    }
  }, async (request) => {
    const { page = 1, per_page: perPage = 20, search } = request.query
    return await (await fastify.billing.for(request.organizationId)).customers.list(page, perPage, search)
  })
}

export default plugin
