import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { UsageOverviewQuery, UsageOverviewResponse } from '../../../schemas/dashboard.js'
import { errorResponses, InvalidRangeError } from '../../../schemas/errors.js'
import { ORGANIZATION_SCOPE } from '../../../schemas/organizations.js'

const DEFAULT_RANGE_MS = 30 * 24 * 3600 * 1000
/** A day bucket per day: a year of them at most. */
const MAX_RANGE_MS = 366 * 24 * 3600 * 1000

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['usage'],
      operationId: 'getUsageOverview',
      summary: 'Usage and cost of every customer: totals, top customers, models, and day buckets',
      description: 'From the stored events over [from, to), failed calls excluded, exact decimals: a customer\'s ' +
        'cost_usd here equals its GET /api/customers/{id}/usage total over the same range. Days are UTC. ' +
        'Calls that wait for a customer mapping appear under the customer "(unmapped)". At most 366 days. ' +
        ORGANIZATION_SCOPE,
      querystring: UsageOverviewQuery,
      response: { 200: UsageOverviewResponse, ...errorResponses(400, 404, 503) }
    }
  }, async (request) => {
    const to = request.query.to !== undefined ? new Date(request.query.to) : new Date()
    const from = request.query.from !== undefined ? new Date(request.query.from) : new Date(to.getTime() - DEFAULT_RANGE_MS)
    if (from.getTime() >= to.getTime()) throw new InvalidRangeError(`from (${from.toISOString()}) must be before to (${to.toISOString()})`)
    if (to.getTime() - from.getTime() > MAX_RANGE_MS) throw new InvalidRangeError('the range spans more than 366 days: ask for a shorter one')
    return await fastify.dashboard.usage(request.organizationId, from, to, request.query.top ?? 10)
  })
}

export default plugin
