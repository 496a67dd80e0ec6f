import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { InvoiceDownload, InvoiceParams } from '../../../../../schemas/invoices.js'
import { errorResponses } from '../../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    schema: {
      tags: ['invoices'],
      operationId: 'downloadInvoice',
      summary: 'The URL of an invoice\'s PDF',
      description: '200 with file_url when Lago has the PDF; 202 while Lago generates it (ask again shortly). Only ' +
        'finalized invoices have a PDF: 404 otherwise.',
      params: InvoiceParams,
      response: { 200: InvoiceDownload, 202: InvoiceDownload, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request, reply) => {
    const result = await (await fastify.billing.for(request.organizationId)).invoices.download(request.params.id)
    return reply.code(result.status === 'available' ? 200 : 202).send(result)
  })
}

export default plugin
