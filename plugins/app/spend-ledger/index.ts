import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import { isObject, text } from '../litellm/fields.js'
import { readSpendAlert } from '../litellm/spend-alert.js'
import { ledgerTotals, recordSpendAlert, type LedgerTotal } from './repository.js'

export interface SpendLedger {
  /** Records a LiteLLM alerting webhook event: spend_tracked goes to the ledger, the others are only counted. */
  record: (body: unknown, rawBody: string) => Promise<{ status: 'recorded' | 'ignored', reason?: string }>
  /** An organization's ledger totals per customer over [from, to) (alerts are recorded under default). */
  totals: (organization: string, range: { from?: Date, to?: Date, customerId?: string }) => Promise<LedgerTotal[]>
}

declare module 'fastify' {
  interface FastifyInstance {
    spendLedger: SpendLedger
  }
}

/** What LiteLLM says each customer spent (its spend_tracked alerts): a ledger to compare with billed usage, never billed. */
export default fp(async function spendLedger (fastify) {
  const { db, metrics } = fastify
  const alerts = new Counter({
    name: 'litellm_alerts_total',
    help: 'LiteLLM alerting webhook events by type; spend_tracked ones are recorded in the spend ledger',
    labelNames: ['event', 'outcome'] as const,
    registers: [metrics.registry]
  })

  fastify.decorate('spendLedger', {
    async record (body, rawBody) {
      const read = readSpendAlert(body)
      const event = isObject(body) ? text(body.event, 64) ?? 'unknown' : 'unknown'
      if ('ignored' in read) {
        alerts.inc({ event, outcome: 'ignored' })
        return { status: 'ignored', reason: read.ignored }
      }
      await recordSpendAlert(db, read.alert, rawBody)
      alerts.inc({ event, outcome: 'recorded' })
      return { status: 'recorded' }
    },
    totals: async (organization, range) => await ledgerTotals(db, organization, range)
  })
}, { name: 'spend-ledger', dependencies: ['db', 'metrics'] })
