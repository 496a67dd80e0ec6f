import { EventEmitter } from 'node:events'
import fp from 'fastify-plugin'
import { backoffDelay } from '../forwarder/backoff.js'
import { ensureBillingDefaults, type BillingDefaults } from './defaults.js'
import { ensureWebhookEndpoint, webhookUrl } from './webhook-endpoint.js'
import type { Config } from '../../../schemas/config.js'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'

export interface BootstrapState {
  status: 'disabled' | 'pending' | 'done' | 'failing'
  last_error: string | null
  /** When the last attempt ended, and when one last succeeded (ISO 8601). */
  last_attempt_at: string | null
  done_at: string | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Each organization's bootstrap (the default organization's when none is named); `done` is emitted with the
     * organization's id each time its billing defaults are in place.
     */
    bootstrap: { state: (organization?: string) => BootstrapState, events: EventEmitter<{ done: [organization: string] }> }
  }
}

/** The signature algorithm of the endpoint to register: configured, else hmac when its key is known, else jwt. */
export const webhookSignatureAlgo = (config: Config): 'hmac' | 'jwt' =>
  config.LAGO_WEBHOOK_SIGNATURE_ALGO ?? (config.LAGO_WEBHOOK_HMAC_KEY !== undefined ? 'hmac' : 'jwt')

/** The billing defaults of an organization: the service's, with the organization's own metric and plan codes. */
export const billingDefaults = (config: Config, codes?: { metricCode: string, planCode: string }): BillingDefaults => ({
  metricCode: codes?.metricCode ?? config.LAGO_METRIC_CODE,
  planCode: codes?.planCode ?? config.LAGO_PLAN_CODE,
  interval: config.LAGO_PLAN_INTERVAL,
  amountCents: config.LAGO_PLAN_AMOUNT_CENTS,
  currency: config.LAGO_PLAN_CURRENCY,
  chargeModel: config.LAGO_PLAN_CHARGE_MODEL,
  unitAmount: config.LAGO_PLAN_UNIT_AMOUNT
})

const DISABLED: BootstrapState = { status: 'disabled', last_error: null, last_attempt_at: null, done_at: null }

/**
 * Makes sure each organization's Lago has the default metric and plan (and, with PUBLIC_URL, sends its webhooks
 * here): for every active organization at start, and for an organization when it is created or changed (a new key
 * or URL may be another Lago). In the background: a Lago may still be booting (compose starts everything
 * together), so each organization retries with backoff on its own, and nothing blocks the service's start.
 */
export default fp(async function bootstrap (fastify) {
  const { config, lagoClients, log, organizations } = fastify
  const states = new Map<string, BootstrapState>()
  const timers = new Map<string, NodeJS.Timeout>()
  /** Bumped per organization on each (re)start, so that a superseded attempt's retry is dropped. */
  const generations = new Map<string, number>()
  let stopped = !config.BOOTSTRAP_ON_START

  const events = new EventEmitter<{ done: [organization: string] }>()
  fastify.decorate('bootstrap', { state: (organization = DEFAULT_ORGANIZATION_ID) => ({ ...(states.get(organization) ?? DISABLED) }), events })
  if (stopped) return

  const eligible = async (id: string): Promise<boolean> => {
    const organization = await organizations.get(id)
    if (organization === null || organization.status !== 'active') return false
    return organization.hasLagoApiKey || (id === DEFAULT_ORGANIZATION_ID && fastify.lago.configured)
  }

  const attempt = async (id: string, generation: number, n: number): Promise<void> => {
    if (stopped || generations.get(id) !== generation) return
    const state = states.get(id) as BootstrapState
    const orgLog = log.child({ organization: id })
    try {
      const [lago, settings, organization] = await Promise.all([lagoClients.for(id), organizations.settings(id), organizations.get(id)])
      const result = await ensureBillingDefaults(lago, billingDefaults(config, settings))
      orgLog.info({ metric_code: settings.metricCode, plan_code: settings.planCode, ...result }, 'Lago billing defaults are in place')
      if (config.PUBLIC_URL !== undefined) {
        // The default organization signs as configured; another signs hmac when its HMAC key is known, else jwt.
        const algo = id === DEFAULT_ORGANIZATION_ID ? webhookSignatureAlgo(config) : organization?.hasLagoWebhookHmacKey === true ? 'hmac' : 'jwt'
        const endpoint = await ensureWebhookEndpoint(lago, config.PUBLIC_URL, algo)
        orgLog.info({ webhook_url: webhookUrl(config.PUBLIC_URL), signature_algo: algo, endpoint }, 'Lago sends its webhooks here')
      }
      if (generations.get(id) !== generation) return
      state.status = 'done'
      state.last_error = null
      state.last_attempt_at = state.done_at = new Date().toISOString()
      events.emit('done', id)
    } catch (err) {
      if (generations.get(id) !== generation) return
      state.status = 'failing'
      state.last_attempt_at = new Date().toISOString()
      state.last_error = err instanceof Error ? err.message : String(err)
      const delay = Math.max(1000, backoffDelay(n, { baseMs: config.LAGO_PROBE_INTERVAL_MS, maxMs: fastify.tuning.lagoProbeMaxIntervalMs }))
      orgLog.warn({ err, retry_in_ms: delay }, 'could not ensure the Lago billing defaults yet')
      if (!stopped) timers.set(id, setTimeout(() => { void attempt(id, generation, n + 1) }, delay))
    }
  }

  /** (Re)starts an organization's bootstrap; an organization that is not active (or has no key) shows disabled. */
  const begin = async (id: string): Promise<void> => {
    clearTimeout(timers.get(id))
    const generation = (generations.get(id) ?? 0) + 1
    generations.set(id, generation)
    if (!(await eligible(id))) {
      states.set(id, { ...DISABLED })
      return
    }
    states.set(id, { status: 'pending', last_error: null, last_attempt_at: null, done_at: states.get(id)?.done_at ?? null })
    await attempt(id, generation, 1)
  }
  const changed = (id: string): void => {
    begin(id).catch((err: unknown) => log.warn({ err, organization: id }, 'bootstrap: could not start for a changed organization'))
  }

  fastify.addHook('onReady', async () => {
    organizations.on('changed', changed)
    for (const o of await organizations.list()) {
      // Pending as soon as the service is ready, not only once the first attempt starts.
      if (await eligible(o.id)) states.set(o.id, { status: 'pending', last_error: null, last_attempt_at: null, done_at: null })
      changed(o.id)
    }
  })
  fastify.addHook('onClose', async () => {
    stopped = true
    organizations.off('changed', changed)
    for (const timer of timers.values()) clearTimeout(timer)
  })
}, { name: 'bootstrap', dependencies: ['config', 'lago', 'organizations'] })
