import fp from 'fastify-plugin'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'
import type { LagoClient } from '../lago/client.js'
import { LagoReadCache } from './cache.js'
import { CatalogService } from './catalog.js'
import { CustomerService } from './customers.js'
import { provisioningClaimTtlMs } from '../subscriptions/resolver.js'
import { InvoiceService } from './invoices.js'
import { UsageService } from './usage.js'

export interface Billing {
  customers: CustomerService
  catalog: CatalogService
  invoices: InvoiceService
  usage: UsageService
}

export interface BillingDirectory extends Billing {
  /**
   * The billing services of one organization: its Lago (fastify.lagoClients), its stored rows, its own cache
   * entries. The directory itself is the default organization's.
   */
  for: (organizationId: string) => Promise<Billing>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** What the /api routes do: Lago's customers, plans, metrics and invoices, and usage (default organization; `.for(id)` any). */
    billing: BillingDirectory
  }
}

export default fp(async function billing (fastify) {
  const { config, db, lago, lagoClients, organizations, forwarder, log } = fastify

  const build = (organizationId: string, client: LagoClient): Billing => {
    const isDefault = organizationId === DEFAULT_ORGANIZATION_ID
    const cache = new LagoReadCache({ redis: fastify.redis, ttlSeconds: config.LAGO_CACHE_TTL_SECONDS, log, namespace: isDefault ? undefined : `org:${organizationId}` })
    // Each needs the other: deleting a plan terminates its customers' subscriptions, and a subscription needs a plan.
    const catalog = new CatalogService({
      lago: client,
      cache,
      onPlanDeleted: async (code) => { await customers.forgetSubscriptions(code) }
    })
    const customers = new CustomerService({
      db,
      organizationId,
      lago: client,
      cache,
      // This organization's waiting events of these customers go back to its queue.
      releaseUnmapped: async (ids) => await forwarder.releaseUnmapped(ids, organizationId),
      requirePlan: async (code) => await catalog.getPlan(code),
      claimTtlMs: provisioningClaimTtlMs(config.LAGO_TIMEOUT_MS)
    })
    const usage = new UsageService({ db, organizationId, lago: client, getCustomer: async (id) => await customers.get(id) })
    return { customers, catalog, invoices: new InvoiceService(client), usage }
  }

  const defaultBilling = build(DEFAULT_ORGANIZATION_ID, lago)
  const built = new Map<string, { client: LagoClient, billing: Billing }>()
  organizations.on('changed', (id) => { built.delete(id) })

  fastify.decorate('billing', {
    ...defaultBilling,
    async for (organizationId: string): Promise<Billing> {
      const client = await lagoClients.for(organizationId)
      if (client === lago) return defaultBilling
      // Rebuilt when the organization's client is (its key or URL changed).
      const cached = built.get(organizationId)
      if (cached !== undefined && cached.client === client) return cached.billing
      const billing = build(organizationId, client)
      built.set(organizationId, { client, billing })
      return billing
    }
  })
}, { name: 'billing', dependencies: ['config', 'db', 'redis', 'lago', 'forwarder', 'organizations'] })
