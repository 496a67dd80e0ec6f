import fp from 'fastify-plugin'
import { LagoReadCache } from './cache.js'
import { CatalogService } from './catalog.js'
import { CustomerService } from './customers.js'
import { InvoiceService } from './invoices.js'
import { UsageService } from './usage.js'

export interface Billing {
  customers: CustomerService
  catalog: CatalogService
  invoices: InvoiceService
  usage: UsageService
}

declare module 'fastify' {
  interface FastifyInstance {
    /** What the /api routes do: Lago's customers, plans, metrics and invoices, and usage. */
    billing: Billing
  }
}

export default fp(async function billing (fastify) {
  const { config, db, lago, forwarder, log } = fastify
  const cache = new LagoReadCache({ redis: fastify.redis, ttlSeconds: config.LAGO_CACHE_TTL_SECONDS, log })
  // Each needs the other: deleting a plan terminates its customers' subscriptions, and a subscription needs a plan.
  const catalog = new CatalogService({
    lago,
    cache,
    onPlanDeleted: async (code) => { await customers.forgetSubscriptions(code) }
  })
  const customers = new CustomerService({
    db,
    lago,
    cache,
    releaseUnmapped: async (ids) => await forwarder.releaseUnmapped(ids),
    requirePlan: async (code) => await catalog.getPlan(code)
  })
  const usage = new UsageService({ db, lago, getCustomer: async (id) => await customers.get(id) })
  fastify.decorate('billing', { customers, catalog, invoices: new InvoiceService(lago), usage })
}, { name: 'billing', dependencies: ['config', 'db', 'redis', 'lago', 'forwarder'] })
