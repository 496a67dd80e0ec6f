import type { FastifyInstance } from 'fastify'
import type { LagoSimulator } from '../../scripts/lago-simulator/index.js'
import { build } from './app.js'
import { ADMIN_KEY, FAST_FORWARDING, FAST_TUNING, until } from './forwarding.js'
import { simulator } from './lago.js'
import { freePort } from '../../scripts/free-port.js'

type TestContext = { teardown: (fn: () => unknown) => void }

export const HMAC_KEY = 'org-hmac-key-0f3c'

/**
 * A Lago simulator sending webhooks (short retry delays), and the whole service listening on a real port that
 * bootstrap registers with the simulator (PUBLIC_URL), as a deployment does.
 */
export async function buildWithLagoWebhooks (t: TestContext, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, sim: LagoSimulator, url: string }> {
  const sim = await simulator(t, { recordEventBodies: true, webhooks: { hmacKey: HMAC_KEY, retryDelaysMs: [50, 100] } })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const app = await build(t, {
    LAGO_API_URL: sim.url,
    LAGO_API_KEY: sim.apiKey,
    API_KEYS: ADMIN_KEY,
    ...FAST_FORWARDING,
    PUBLIC_URL: url,
    BILLING_AUDIT_INTERVAL_MS: '0',
    ...env
  }, FAST_TUNING)
  await app.listen({ port, host: '127.0.0.1' })
  await until(() => sim.webhooks.endpoints.length === 1, 'bootstrap to register the webhook endpoint')
  // A real Lago has its signing key before it sends anything. Made here, not while the first webhooks wait for it:
  // they would then all leave at once, and the service could store a subscription's end before its start.
  await sim.webhooks.publicKey()
  return { app, sim, url }
}

/** Waits until every delivery the simulator started has succeeded or failed, and the service acted on what it stored. */
export async function deliveredAndActedOn (app: FastifyInstance, sim: LagoSimulator): Promise<void> {
  await sim.webhooks.settled()
  await app.lagoWebhooks.drain()
}

/** A customer subscribed (through the API) to the plan bootstrap created; Lago's webhooks about it follow. */
export async function subscribe (app: FastifyInstance, customer: string, planCode = 'ai_usage_plan'): Promise<void> {
  const res = await app.inject({ method: 'POST', url: '/api/customers', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, payload: JSON.stringify({ external_id: customer, plan_code: planCode }) })
  if (res.statusCode !== 200) throw new Error(`subscribing ${customer}: ${res.statusCode} ${res.body}`)
}
