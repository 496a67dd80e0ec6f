import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Metric, MetricCreate, MetricList, MetricListQuery } from '../../../../schemas/billable-metrics.js'
import { BODY_ERRORS, errorResponses } from '../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    schema: {
      tags: ['billable-metrics'],
      operationId: 'createBillableMetric',
      summary: 'Create a billable metric',
      description: '422 from Lago when the code is taken or field_name is missing for an aggregation that needs it.',
      body: MetricCreate,
      response: { 201: Metric, ...errorResponses(...BODY_ERRORS, 422, 502, 503) }
    }
  }, async (request, reply) => reply.code(201).send(await (await fastify.billing.for(request.organizationId)).catalog.createMetric(request.body)))

  fastify.get('/', {
    schema: {
      tags: ['billable-metrics'],
      operationId: 'listBillableMetrics',
      summary: 'List billable metrics',
      querystring: MetricListQuery,
      response: { 200: MetricList, ...errorResponses(400, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).catalog.listMetrics(request.query.page ?? 1, request.query.per_page ?? 20))
}

export default plugin
