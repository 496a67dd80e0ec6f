import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PipelineResponse } from '../../../schemas/dashboard.js'
import { errorResponses } from '../../../schemas/errors.js'
import { ORGANIZATION_SCOPE } from '../../../schemas/organizations.js'

const WINDOW_SECONDS = 60
/** Listed even when idle, so that a silent source shows as zero rather than missing. */
const KNOWN_SOURCES = ['generic_api', 'lago_callback', 'openmeter', 'webhook', 'webhook_batch', 'spend_logs']

const rate = (n: number): number => Math.round((n / WINDOW_SECONDS) * 1000) / 1000

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['ingestion'],
      operationId: 'getPipeline',
      summary: 'Live pipeline: events per second in and forwarded, backlog, forwarder state, per source',
      description: `Rates over the last ${WINDOW_SECONDS} seconds (received_at for events in, processed_at for events ` +
        'forwarded to Lago). backlog counts events not yet in Lago (pending or awaiting a retry); problems, events ' +
        'dead, failed or unmapped. The forwarder state is this replica\'s. Cheap enough to poll every few seconds. ' +
        ORGANIZATION_SCOPE,
      response: { 200: PipelineResponse, ...errorResponses(404, 503) }
    }
  }, async (request) => {
    const organization = request.organizationId
    const [{ sources: rows, oldestUnsentAgeSeconds: oldest }, forwarder] = await Promise.all([
      fastify.dashboard.pipeline(organization, WINDOW_SECONDS), fastify.forwarder.stateOf(organization)])
    const bySource = new Map(rows.map((r) => [r.source, r]))
    const sources = [...KNOWN_SOURCES, ...rows.map((r) => r.source).filter((s) => !KNOWN_SOURCES.includes(s))].map((source) => {
      const r = bySource.get(source)
      return { source, received_last_minute: r?.received ?? 0, forwarded_last_minute: r?.forwarded ?? 0, backlog: r?.backlog ?? 0, problems: r?.problems ?? 0 }
    })
    const sum = (pick: (s: typeof sources[number]) => number): number => sources.reduce((n, s) => n + pick(s), 0)
    const received = sum((s) => s.received_last_minute)
    const forwarded = sum((s) => s.forwarded_last_minute)
    return {
      generated_at: new Date().toISOString(),
      window_seconds: WINDOW_SECONDS,
      received_last_minute: received,
      forwarded_last_minute: forwarded,
      received_per_second: rate(received),
      forwarded_per_second: rate(forwarded),
      backlog: sum((s) => s.backlog),
      oldest_pending_age_seconds: oldest,
      forwarder,
      sources
    }
  })
}

export default plugin
