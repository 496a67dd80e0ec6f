import fp from 'fastify-plugin'
import { DEFAULT_ORGANIZATION_ID, type UsageEventSource } from '../../../db/database.js'
import type { HoldReason } from '../usage-events/normalize.js'
import type { WriteOutcome } from '../usage-events/repository.js'
import { toUsageEvent, type LiteLLMCall } from './calls.js'

// The readers of LiteLLM's formats (pure functions, unit-tested in test/plugins/app/litellm), for the routes.
export { isObject } from './fields.js'
export type { LiteLLMCall } from './calls.js'
export { isCloudEvent, readCloudEvent } from './cloud-event.js'
export { readLagoEvent, type LagoEventEcho, type LagoFieldErrors } from './lago-event.js'
export { readStandardLoggingPayload } from './standard-logging-payload.js'

/** What became of a stored call, and whether it was held back from Lago (failed, or no customer yet). */
export type StoredCall = WriteOutcome & { held?: HoldReason['kind'] }
/** organizationId: the organization the calls belong to (the ingestion credential decides); default when unset. */
export type StoreCalls = (calls: LiteLLMCall[], source: UsageEventSource, organizationId?: string) => Promise<StoredCall[]>

export interface LiteLLMIngestion {
  /** Stores calls read from one of LiteLLM's formats, customers resolved now; one outcome per call, in order. */
  store: StoreCalls
}

declare module 'fastify' {
  interface FastifyInstance {
    litellm: LiteLLMIngestion
  }
}

/** LiteLLM's calls, whichever format they came in, stored as usage events of the customer that pays for them. */
export default fp(async function litellm (fastify) {
  const { customerMappings, organizations, usageEvents } = fastify

  // The organization a call belongs to: the ingestion credential's. A shared credential (default's) with organization
  // routes: the call's LiteLLM org or team decides; a call no route claims waits, unmapped with the reason, in the
  // unrouted organization (never billed, never dropped).
  const organizationOf = async (call: LiteLLMCall, credential: string | undefined): Promise<{ id: string } | { id: string, unrouted: string }> => {
    if (credential !== undefined && credential !== DEFAULT_ORGANIZATION_ID) return { id: credential }
    const ids = 'identities' in call.identity ? call.identity.identities : {}
    const routed = organizations.route({ org: ids.org, team: ids.team })
    if (routed === null) return { id: DEFAULT_ORGANIZATION_ID }
    if ('organizationId' in routed) return { id: routed.organizationId }
    return { id: await organizations.unroutedOrganization(), unrouted: routed.unrouted }
  }

  fastify.decorate('litellm', {
    async store (calls, source, organizationId) {
      if (calls.length === 0) return []
      const events = await Promise.all(calls.map(async (call) => {
        const organization = await organizationOf(call, organizationId)
        // Unrouted: which customer pays depends on the organization a route will give it, so none yet.
        const resolution = 'unrouted' in organization
          ? { unmapped: organization.unrouted }
          : await customerMappings.resolve(organization.id, call.identity)
        const event = toUsageEvent(call, source, resolution)
        // Set on the new object, not spread into a copy: a spread is the slow path of object creation, per event.
        event.organizationId = organization.id
        return event
      }))
      const outcomes = await usageEvents.ingest(events)
      return outcomes.map((o, i) => events[i].hold !== undefined ? { ...o, held: events[i].hold?.kind } : o)
    }
  })
}, { name: 'litellm', dependencies: ['customer-mappings', 'usage-events', 'organizations'] })
