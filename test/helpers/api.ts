import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { LagoSimulator } from '../../scripts/lago-simulator/index.js'
import { ADMIN_KEY } from './forwarding.js'

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** Calls to the service's API as a client with `key` (the test admin key by default) would make them. */
export function apiClient (app: FastifyInstance, key: string | null = ADMIN_KEY) {
  const call = async (method: Method, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> => {
    const options: InjectOptions = {
      method,
      url,
      headers: {
        ...(key !== null ? { authorization: `Bearer ${key}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers
      },
      ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {})
    }
    return await app.inject(options)
  }
  return {
    get: async (url: string, headers?: Record<string, string>) => await call('GET', url, undefined, headers),
    post: async (url: string, body?: unknown, headers?: Record<string, string>) => await call('POST', url, body, headers),
    put: async (url: string, body: unknown) => await call('PUT', url, body),
    patch: async (url: string, body: unknown) => await call('PATCH', url, body),
    delete: async (url: string) => await call('DELETE', url)
  }
}

/** The Lago calls the simulator has answered so far, as "METHOD path" (query strings included). */
export function lagoCalls (sim: LagoSimulator): string[] {
  return sim.requests.entries().map((r) => `${r.method} ${r.path}`)
}

/** The Lago calls made while `action` ran. */
export async function lagoCallsDuring (sim: LagoSimulator, action: () => Promise<unknown>): Promise<string[]> {
  const before = sim.requests.total
  await action()
  return sim.requests.entries({ since: before - 1 }).map((r) => `${r.method} ${r.path}`)
}

/**
 * Through the API: the billable metric ai_usage (sum of total_tokens), a monthly USD plan charging it with a
 * standard charge, and a customer subscribed to that plan (subscription external_id = the customer's).
 */
export async function subscribedCustomer (api: ReturnType<typeof apiClient>, options: { customer: string, plan: string, amountCents?: number, properties?: Record<string, unknown> }): Promise<void> {
  const expect = (res: LightMyRequestResponse, status: number): void => {
    if (res.statusCode !== status) throw new Error(`${res.statusCode} ${res.body}`)
  }
  expect(await api.post('/api/billing/metrics', { name: 'Tokens', code: 'ai_usage', aggregation_type: 'sum_agg', field_name: 'total_tokens' }), 201)
  expect(await api.post('/api/billing/plans', {
    name: options.plan,
    code: options.plan,
    interval: 'monthly',
    amount_cents: options.amountCents ?? 0,
    amount_currency: 'USD',
    charges: [{ billable_metric_id: 'ai_usage', charge_model: 'standard', properties: options.properties ?? { amount: '0.01' } }]
  }), 201)
  expect(await api.post('/api/customers', { external_id: options.customer, plan_code: options.plan }), 200)
}
