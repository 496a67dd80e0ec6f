import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Metric, MetricParams } from '../../../../../schemas/billable-metrics.js'
import { errorResponses } from '../../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['billable-metrics'],
      operationId: 'getBillableMetric',
      summary: 'A billable metric',
      params: MetricParams,
      response: { 200: Metric, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).catalog.getMetric(request.params.code))
}

export default plugin
