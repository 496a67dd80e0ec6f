import fp from 'fastify-plugin'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'
import { SubscriptionResolver, provisioningClaimTtlMs, type Resolution } from './resolver.js'

export interface SubscriptionResolvers {
  /** The default organization's: which Lago subscription each customer's usage goes to. */
  resolve: (customerIds: string[]) => Promise<Map<string, Resolution>>
  /** An organization's resolver: its customers, its Lago, its plan and auto-provisioning setting. */
  for: (organization: string) => Promise<SubscriptionResolver>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Which Lago subscription a customer's usage events go to (looked up, or provisioned), per organization. */
    subscriptions: SubscriptionResolvers
  }
}

export default fp(async function subscriptions (fastify) {
  const { config, db, lagoClients, log, organizations } = fastify
  const claimTtlMs = provisioningClaimTtlMs(config.LAGO_TIMEOUT_MS)
  // One per organization, rebuilt when the organization changes (another Lago, key, plan or setting).
  const resolvers = new Map<string, Promise<SubscriptionResolver>>()
  const build = async (organization: string): Promise<SubscriptionResolver> => {
    const [lago, settings] = await Promise.all([lagoClients.for(organization), organizations.settings(organization)])
    return new SubscriptionResolver({
      db,
      organization,
      lago,
      log,
      autoProvision: settings.autoProvisionCustomers,
      planCode: settings.planCode,
      claimTtlMs
    })
  }
  const resolverFor = async (organization: string): Promise<SubscriptionResolver> => {
    let pending = resolvers.get(organization)
    if (pending === undefined) {
      pending = build(organization)
      resolvers.set(organization, pending)
      pending.catch(() => { if (resolvers.get(organization) === pending) resolvers.delete(organization) })
    }
    return await pending
  }
  organizations.on('changed', (id) => { resolvers.delete(id) })

  fastify.decorate('subscriptions', {
    resolve: async (customerIds: string[]) => await (await resolverFor(DEFAULT_ORGANIZATION_ID)).resolve(customerIds),
    for: resolverFor
  } satisfies SubscriptionResolvers)
}, { name: 'subscriptions', dependencies: ['db', 'lago', 'organizations'] })
