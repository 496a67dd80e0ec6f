import fp from 'fastify-plugin'
import type { UsageOverviewResponseBody } from '../../../schemas/dashboard.js'
import { Decimal } from '../lago/decimal.js'
import { oldestUnsentAgeSeconds } from '../usage-events/repository.js'
import { lastDelivery, problemGroups, sourceActivity, unmappedIdentities, type LastDeliveryRow, type ProblemGroupRow, type SourceActivity, type UnmappedIdentityRow } from './repository.js'
import { usageOverview } from './usage.js'

/** Every view is of one organization: another organization's events, deliveries and problems are not in it. */
export interface Dashboard {
  /** Per source over the last `windowSeconds`, and the age of the oldest event not yet in Lago. */
  pipeline: (organization: string, windowSeconds: number) => Promise<{ sources: SourceActivity[], oldestUnsentAgeSeconds: number | null }>
  /** Problem groups and unmapped identities, costs as normalized decimal strings. */
  problems: (organization: string, limit: number) => Promise<{ groups: ProblemGroupRow[], total: number, identities: UnmappedIdentityRow[] }>
  usage: (organization: string, from: Date, to: Date, top: number) => Promise<UsageOverviewResponseBody>
  lastDelivery: (organization: string) => Promise<LastDeliveryRow | null>
}

declare module 'fastify' {
  interface FastifyInstance {
    dashboard: Dashboard
  }
}

/** The operator's read-only views (GET /api/pipeline, /api/problems, /api/usage, /api/lago/status). */
export default fp(async function dashboard (fastify) {
  const { db } = fastify
  const cost = <T extends { cost_usd: string }>(r: T): T => ({ ...r, cost_usd: Decimal.from(r.cost_usd).toString() })
  fastify.decorate('dashboard', {
    async pipeline (organization, windowSeconds) {
      const [sources, oldest] = await Promise.all([sourceActivity(db, organization, windowSeconds), oldestUnsentAgeSeconds(db, organization)])
      return { sources, oldestUnsentAgeSeconds: oldest }
    },
    async problems (organization, limit) {
      const [{ groups, total }, identities] = await Promise.all([problemGroups(db, organization, limit), unmappedIdentities(db, organization, limit)])
      return { groups: groups.map(cost), total, identities: identities.map(cost) }
    },
    usage: async (organization, from, to, top) => await usageOverview(db, organization, from, to, top),
    lastDelivery: async (organization) => await lastDelivery(db, organization)
  })
}, { name: 'dashboard', dependencies: ['db'] })
