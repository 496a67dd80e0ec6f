import fp from 'fastify-plugin'
import { SubscriptionResolver } from './resolver.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Which Lago subscription a customer's usage events go to (looked up, or provisioned). */
    subscriptions: SubscriptionResolver
  }
}

export default fp(async function subscriptions (fastify) {
  fastify.decorate('subscriptions', new SubscriptionResolver({
    db: fastify.db,
    lago: fastify.lago,
    log: fastify.log,
    autoProvision: fastify.config.AUTO_PROVISION_CUSTOMERS,
    planCode: fastify.config.LAGO_PLAN_CODE
  }))
}, { name: 'subscriptions', dependencies: ['db', 'lago'] })
