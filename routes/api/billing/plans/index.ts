import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Plan, PlanCreate, PlanList, PlanListQuery } from '../../../../schemas/plans.js'
import { BODY_ERRORS, LAGO_ERRORS, errorResponses } from '../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    schema: {
      tags: ['plans'],
      operationId: 'createPlan',
      summary: 'Create a plan with its usage charges',
      description: 'charges[].billable_metric_id takes the metric\'s lago_id or its code. Prices are decimal strings ' +
        '("0.002"); a JSON number is refused (400), never rounded. pay_in_advance defaults to false. 422 from Lago ' +
        'when the code is taken or a charge is not valid for Lago (its field errors in details).',
      body: PlanCreate,
      response: { 201: Plan, ...errorResponses(...BODY_ERRORS, ...LAGO_ERRORS) }
    }
  }, async (request, reply) => reply.code(201).send(await (await fastify.billing.for(request.organizationId)).catalog.createPlan(request.body)))

  fastify.get('/', {
    schema: {
      tags: ['plans'],
      operationId: 'listPlans',
      summary: 'List plans',
      querystring: PlanListQuery,
      response: { 200: PlanList, ...errorResponses(400, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).catalog.listPlans(request.query.page ?? 1, request.query.per_page ?? 20))
}

export default plugin
