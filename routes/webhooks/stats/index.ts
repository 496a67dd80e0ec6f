import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { StatsResponse } from '../../../schemas/usage-events.js'
import { errorResponses } from '../../../schemas/errors.js'
import { BEARER_AUTH } from '../../../schemas/common.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    onRequest: fastify.requireApiKey,
    schema: {
      tags: ['ingestion'],
      operationId: 'getIngestionStats',
      summary: 'Usage events by forwarding status and source',
      description: 'Totals and the last 24 hours by status (received counts every stored event), per source, the age ' +
        'of the oldest event not yet in Lago, the events received per second over the last minute, and reconciliation ' +
        'with LiteLLM\'s spend logs. unmapped counts calls waiting for a customer (their reason is in last_error).',
      security: BEARER_AUTH,
      response: { 200: StatsResponse, ...errorResponses(401, 503) }
    }
  }, async () => {
    const [stats, reconciliation] = await Promise.all([fastify.usageEvents.stats(), fastify.reconciler.state()])
    return { ...stats, reconciliation }
  })
}

export default plugin
