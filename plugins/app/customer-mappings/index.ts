import fp from 'fastify-plugin'
import type { IdentityKind } from '../../../db/database.js'
import { callFingerprint } from '../litellm/calls.js'
import { customerPolicy, resolveCustomer, type CallIdentity, type CustomerPolicy, type CustomerResolution, type Identities, type MappingLookup } from './identities.js'
import { databaseUnavailable } from '../../../db/errors.js'
import {
  assignCustomers, deleteMapping, getMapping, listMappings, loadMappings, mappingsVersion, parkedCalls, upsertMapping,
  type CustomerAssignment, type CustomerMappingRow, type MappingQuery
} from './repository.js'

export type { CallIdentity, CustomerResolution }

/** Which Lago customer pays for a LiteLLM identity: per organization (its mappings, its identity order). */
export interface CustomerMappings {
  /**
   * The Lago customer of a call of this organization, under its identity order (customer_fields, else
   * LITELLM_CUSTOMER_FIELDS) and its mappings only (from this instance's copy).
   */
  resolve: (organizationId: string, identity: CallIdentity) => Promise<CustomerResolution>
  list: (q: MappingQuery) => Promise<{ rows: CustomerMappingRow[], total: number }>
  /** One mapping of the organization, without counting the table. */
  get: (organizationId: string, identity: IdentityKind, value: string) => Promise<CustomerMappingRow | undefined>
  /** Creates or replaces a mapping of the organization, then gives its waiting calls of that identity their customer. */
  put: (organizationId: string, identity: IdentityKind, value: string, customerId: string) => Promise<{ row: CustomerMappingRow, created: boolean, released: number }>
  remove: (organizationId: string, identity: IdentityKind, value: string) => Promise<boolean>
  /**
   * Gives the organization's stored calls that wait for a customer one where its mappings or order now name it
   * (e.g. calls a new organization route moved there); how many were queued for Lago.
   */
  releaseParked: (organizationId: string) => Promise<number>
}

declare module 'fastify' {
  interface FastifyInstance {
    customerMappings: CustomerMappings
  }
}

const key = (organizationId: string, kind: IdentityKind, value: string): string => `${organizationId}\u0000${kind}\u0000${value}`
const PARKED_PAGE = 500

/**
 * Which Lago customer pays for a LiteLLM identity, per organization (its customer_mappings rows, its customer_fields
 * or LITELLM_CUSTOMER_FIELDS, the default customer).
 */
export default fp(async function customerMappings (fastify) {
  const { config, db, log, organizations, usageEvents } = fastify
  // The organization's identity order (its customer_fields, else LITELLM_CUSTOMER_FIELDS); the default customer and
  // mapped-only rule are the service's.
  const policyOf = async (organizationId: string): Promise<CustomerPolicy> => {
    const own = (await organizations.get(organizationId))?.customerFields ?? null
    return customerPolicy({ ...config, LITELLM_CUSTOMER_FIELDS: own ?? config.LITELLM_CUSTOMER_FIELDS },
      own !== null ? `organization ${organizationId}'s customer_fields` : undefined)
  }

  // The mapping table is small and read on every call: each instance keeps a copy, reloaded when it changes.
  let mappings = new Map<string, string>()
  let version = ''
  const reload = async (): Promise<boolean> => {
    const current = await mappingsVersion(db)
    if (current === version) return false
    const rows = await loadMappings(db)
    mappings = new Map(rows.map((r) => [key(r.organization_id, r.identity, r.value), r.customer_external_id]))
    version = current
    return true
  }
  const lookupIn = (organizationId: string): MappingLookup => (kind, value) => mappings.get(key(organizationId, kind, value))
  const resolve = async (organizationId: string, identity: CallIdentity): Promise<CustomerResolution> =>
    resolveCustomer(identity, await policyOf(organizationId), lookupIn(organizationId))

  // Gives stored calls that name no customer one where a mapping or the default now names it (of one organization,
  // or of all); returns how many were queued. One pass at a time: a second request while one runs waits for it and
  // then runs again (it may see more).
  let parkedRun: Promise<number> = Promise.resolve(0)
  const resolveParked = async (organizationId?: string): Promise<number> => {
    parkedRun = parkedRun.catch(() => 0).then(async () => {
      let released = 0
      let after = 0
      for (;;) {
        const page = await parkedCalls(db, after, PARKED_PAGE, organizationId)
        if (page.length === 0) break
        after = page[page.length - 1].id
        const assignments: CustomerAssignment[] = []
        for (const row of page) {
          const m = row.metadata
          const identity: CallIdentity = typeof m.identities === 'object' && m.identities !== null
            ? { identities: m.identities as Identities }
            : { subject: typeof m.subject === 'string' ? m.subject : undefined }
          const r = await resolve(row.organization_id, identity)
          if ('customer' in r) {
            assignments.push({
              id: row.id,
              customer: r.customer,
              via: r.via,
              fingerprint: callFingerprint(r.customer, { tokensInput: row.tokens_input, tokensOutput: row.tokens_output, totalTokens: row.total_tokens, costUsd: row.cost_usd })
            })
          }
        }
        released += await assignCustomers(db, assignments)
      }
      if (released > 0) {
        log.info({ released }, 'calls waiting for a customer now have one: queued for Lago')
        usageEvents.signals.emit('committed', released)
      }
      return released
    })
    return await parkedRun
  }

  await reload()

  fastify.decorate('customerMappings', {
    resolve,
    list: async (q) => await listMappings(db, q),
    get: async (organizationId, identity, value) => await getMapping(db, organizationId, identity, value),
    async put (organizationId, identity, value, customerId) {
      const { row, created } = await upsertMapping(db, organizationId, identity, value, customerId)
      await reload()
      return { row, created, released: await resolveParked(organizationId) }
    },
    async remove (organizationId, identity, value) {
      const removed = await deleteMapping(db, organizationId, identity, value)
      await reload()
      return removed
    },
    releaseParked: async (organizationId) => await resolveParked(organizationId)
  })

  // Mappings made through another instance, and a default customer set since calls were parked.
  let timer: NodeJS.Timeout | undefined
  const refresh = async (): Promise<void> => {
    try {
      if (await reload()) await resolveParked()
    } catch (err) {
      // A database outage is reported once by the database plugin.
      if (!databaseUnavailable(err)) log.warn({ err }, 'could not refresh the customer mappings; the previous ones stay in use')
    }
  }
  fastify.addHook('onReady', async () => {
    await resolveParked().catch((err: unknown) => { log.warn({ err }, 'could not re-resolve calls waiting for a customer') })
    timer = setInterval(() => { void refresh() }, fastify.tuning.customerMappingRefreshMs)
    timer.unref()
  })
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    await parkedRun.catch(() => 0)
  })
}, { name: 'customer-mappings', dependencies: ['config', 'db', 'usage-events', 'organizations'] })
