import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ProblemsQuery, ProblemsResponse } from '../../../schemas/dashboard.js'
import { errorResponses } from '../../../schemas/errors.js'
import { ORGANIZATION_SCOPE } from '../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['forwarding'],
      operationId: 'getProblems',
      summary: 'Events that need a person: dead, failed, unmapped and lago_error, grouped by reason, and unmapped identities',
      description: 'Each group has its status, the reason (last_error.message) and its latest event as a sample. ' +
        'Bring a dead or failed group back with POST /webhooks/retry {"statuses": [status], "reason": reason}; ' +
        'an unmapped identity is billed once mapped (POST /api/customer-mappings). ' + ORGANIZATION_SCOPE,
      querystring: ProblemsQuery,
      response: { 200: ProblemsResponse, ...errorResponses(400, 404, 503) }
    }
  }, async (request) => {
    const limit = request.query.limit ?? 50
    const { groups, total, identities } = await fastify.dashboard.problems(request.organizationId, limit)
    return {
      generated_at: new Date().toISOString(),
      total_events: total,
      groups: groups.map((g) => ({
        status: g.status,
        kind: g.kind,
        reason: g.reason,
        events: g.events,
        cost_usd: g.cost_usd,
        first_received_at: g.first_received_at.toISOString(),
        last_received_at: g.last_received_at.toISOString(),
        sample: {
          request_id: g.request_id,
          customer_external_id: g.customer_external_id,
          model: g.model,
          source: g.source,
          timestamp: g.timestamp.toISOString(),
          attempts: g.attempts
        }
      })),
      unmapped_identities: identities.map((i) => ({ ...i, last_received_at: i.last_received_at.toISOString() }))
    }
  })
}

export default plugin
