import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { StatsResponse } from '../../../schemas/usage-events.js'
import { errorResponses } from '../../../schemas/errors.js'
import { BEARER_AUTH } from '../../../schemas/common.js'
import { ORGANIZATION_SCOPE } from '../../../schemas/organizations.js'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    onRequest: fastify.requireApiKey,
    schema: {
      tags: ['ingestion'],
      operationId: 'getIngestionStats',
      summary: 'Usage events by forwarding status and source',
      description: 'Totals and the last 24 hours by status (received counts every stored event), per source, the age ' +
        'of the oldest event not yet in Lago, the events received per second over the last minute, and reconciliation ' +
        'with LiteLLM\'s spend logs. unmapped counts calls waiting for a customer (their reason is in last_error). ' +
        'organizations: each organization\'s forwarding (running or paused and why, since when, next probe) and backlog ' +
        '(an admin key sees every organization; any other key its own). reconciliation is default\'s (LITELLM_URL; ' +
        'shown to the default organization only); reconciliations: each organization whose own LiteLLM is read (an ' +
        'admin key sees every one; any other key its own). ' + ORGANIZATION_SCOPE,
      security: BEARER_AUTH,
      response: { 200: StatsResponse, ...errorResponses(401, 403, 404, 503) }
    }
  }, async (request) => {
    const organization = request.organizationId
    const admin = request.apiKey?.admin === true
    const [stats, reconciliation, reconciliations, organizations] = await Promise.all([
      fastify.usageEvents.stats(organization),
      organization === DEFAULT_ORGANIZATION_ID ? fastify.reconciler.state() : undefined,
      fastify.reconciler.states(),
      fastify.forwarder.organizations(admin ? undefined : [organization])
    ])
    return {
      ...stats,
      ...(reconciliation !== undefined ? { reconciliation } : {}),
      reconciliations: admin ? reconciliations : reconciliations.filter((r) => r.organization_id === organization),
      organizations
    }
  })
}

export default plugin
