import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Plan, PlanParams, PlanUpdate } from '../../../../../schemas/plans.js'
import { BODY_ERRORS, LAGO_ERRORS, errorResponses } from '../../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['plans'],
      operationId: 'getPlan',
      summary: 'A plan and its charges',
      params: PlanParams,
      response: { 200: Plan, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).catalog.getPlan(request.params.code))

  fastify.put('/', {
    schema: {
      tags: ['plans'],
      operationId: 'updatePlan',
      summary: 'Change a plan',
      description: 'Only the fields sent change. charges, when sent, replace the plan\'s charges: entries with an id ' +
        'update that charge, entries without are created, omitted ones are removed. Once a plan has subscriptions, ' +
        'Lago changes only its name, description, invoice_display_name and amount_cents.',
      params: PlanParams,
      body: PlanUpdate,
      response: { 200: Plan, ...errorResponses(...BODY_ERRORS, ...LAGO_ERRORS) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).catalog.updatePlan(request.params.code, request.body))

  fastify.delete('/', {
    schema: {
      tags: ['plans'],
      operationId: 'deletePlan',
      summary: 'Delete a plan',
      description: 'Lago terminates the plan\'s subscriptions. Usage events of their customers then go where the ' +
        'forwarder decides for a customer without a subscription (AUTO_PROVISION_CUSTOMERS).',
      params: PlanParams,
      response: { 200: Plan, ...errorResponses(400, 404, 502, 503) }
    }
  }, async (request) => await (await fastify.billing.for(request.organizationId)).catalog.deletePlan(request.params.code))
}

export default plugin
