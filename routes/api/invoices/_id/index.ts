import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { InvoiceDetail, InvoiceParams } from '../../../../schemas/invoices.js'
import { errorResponses } from '../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['invoices'],
      operationId: 'getInvoice',
      summary: 'An invoice with its fees',
      params: InvoiceParams,
      response: { 200: InvoiceDetail, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).invoices.get(request.params.id))
}

export default plugin
