import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CustomerParams } from '../../../../../schemas/customers.js'
import { InvoiceList, InvoiceListQuery } from '../../../../../schemas/invoices.js'
import { errorResponses } from '../../../../../schemas/errors.js'
import { classifyLagoError } from '../../../../../plugins/app/lago/index.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['invoices'],
      operationId: 'listCustomerInvoices',
      summary: 'A customer\'s invoices, newest first',
      description: 'From Lago; while Lago is unreachable, from the local record kept from Lago\'s invoice webhooks ' +
        '(source says which, and so does the x-invoices-source header).',
      params: CustomerParams,
      querystring: InvoiceListQuery,
      response: { 200: InvoiceList, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request, reply) => {
    try {
      const list = await (await fastify.billing.for(request.organizationId)).invoices.listForCustomer(request.params.external_id, request.query)
      reply.header('x-invoices-source', 'lago')
      return { ...list, source: 'lago' as const }
    } catch (err) {
      if (classifyLagoError(err) !== 'retryable') throw err
      const local = await fastify.lagoWebhooks.localInvoices(request.params.external_id, request.query.page ?? 1, request.query.per_page ?? 20, request.organizationId)
      if (local === null) throw err
      request.log.info({ err: { message: (err as Error).message } }, 'Lago unreachable: invoices answered from the local record')
      reply.header('x-invoices-source', 'local')
      return local
    }
  })
}

export default plugin
