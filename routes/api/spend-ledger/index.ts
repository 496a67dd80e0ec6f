import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { SpendLedgerQuery, SpendLedgerResponse } from '../../../schemas/litellm.js'
import { errorResponses } from '../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['litellm'],
      operationId: 'getSpendLedger',
      summary: 'LiteLLM\'s spend_tracked alerts per customer (what LiteLLM says each customer spent)',
      description: 'From POST /webhooks/litellm/alerts/<secret>. A ledger to compare with billed usage; never billed itself. ' +
        'The caller\'s organization\'s entries (LiteLLM\'s alerting webhook is the deployment\'s: its alerts are recorded under default).',
      security: [{ bearerAuth: [] }],
      querystring: SpendLedgerQuery,
      response: { 200: SpendLedgerResponse, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => {
    const { from, to, customer_id: customerId } = request.query
    const rows = await fastify.spendLedger.totals(request.organizationId, { from: from !== undefined ? new Date(from) : undefined, to: to !== undefined ? new Date(to) : undefined, customerId })
    return { customers: rows.map((r) => ({ ...r, first_at: r.first_at.toISOString(), last_at: r.last_at.toISOString() })) }
  })
}

export default plugin
