import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CustomerParams } from '../../../../../schemas/customers.js'
import { InvoiceList, InvoiceListQuery } from '../../../../../schemas/invoices.js'
import { errorResponses } from '../../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['invoices'],
      operationId: 'listCustomerInvoices',
      summary: 'A customer\'s invoices, newest first',
      params: CustomerParams,
      querystring: InvoiceListQuery,
      response: { 200: InvoiceList, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request) => await fastify.billing.invoices.listForCustomer(request.params.external_id, request.query))
}

export default plugin
