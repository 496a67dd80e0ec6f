import fp from 'fastify-plugin'
import { backoffDelay } from '../forwarder/backoff.js'
import { ensureBillingDefaults, type BillingDefaults } from './defaults.js'
import type { Config } from '../../../schemas/config.js'

export interface BootstrapState {
  status: 'disabled' | 'pending' | 'done' | 'failing'
  last_error: string | null
}

declare module 'fastify' {
  interface FastifyInstance {
    bootstrap: { state: () => BootstrapState }
  }
}

export const billingDefaults = (config: Config): BillingDefaults => ({
  metricCode: config.LAGO_METRIC_CODE,
  planCode: config.LAGO_PLAN_CODE,
  interval: config.LAGO_PLAN_INTERVAL,
  amountCents: config.LAGO_PLAN_AMOUNT_CENTS,
  currency: config.LAGO_PLAN_CURRENCY,
  chargeModel: config.LAGO_PLAN_CHARGE_MODEL,
  unitAmount: config.LAGO_PLAN_UNIT_AMOUNT
})

/**
 * At start, makes sure Lago has the default metric and plan, in the background: Lago may still be booting
 * (compose starts everything together), so it retries with backoff and never blocks the service's start.
 */
export default fp(async function bootstrap (fastify) {
  const { config, lago, log } = fastify
  const state: BootstrapState = { status: config.BOOTSTRAP_ON_START && lago.configured ? 'pending' : 'disabled', last_error: null }
  fastify.decorate('bootstrap', { state: () => ({ ...state }) })
  if (state.status === 'disabled') return

  let stopped = false
  let timer: NodeJS.Timeout | undefined
  const attempt = async (n: number): Promise<void> => {
    if (stopped) return
    try {
      const result = await ensureBillingDefaults(lago, billingDefaults(config))
      state.status = 'done'
      state.last_error = null
      log.info({ metric_code: config.LAGO_METRIC_CODE, plan_code: config.LAGO_PLAN_CODE, ...result }, 'Lago billing defaults are in place')
    } catch (err) {
      state.status = 'failing'
      state.last_error = err instanceof Error ? err.message : String(err)
      const delay = Math.max(1000, backoffDelay(n, { baseMs: config.LAGO_PROBE_INTERVAL_MS, maxMs: config.LAGO_PROBE_MAX_INTERVAL_MS }))
      log.warn({ err, retry_in_ms: delay }, 'could not ensure the Lago billing defaults yet')
      timer = setTimeout(() => { void attempt(n + 1) }, delay)
    }
  }
  fastify.addHook('onReady', async () => { void attempt(1) })
  fastify.addHook('onClose', async () => {
    stopped = true
    clearTimeout(timer)
  })
}, { name: 'bootstrap', dependencies: ['config', 'lago'] })
