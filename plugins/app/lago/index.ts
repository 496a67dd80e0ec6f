import fp from 'fastify-plugin'
import { Histogram } from 'prom-client'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'
import { LagoClient } from './client.js'

// Pure helpers a route may use to read a Lago failure.
export { classifyLagoError } from './errors.js'

/** One Lago client per organization, built on first use and rebuilt when the organization changes. */
export interface LagoClients {
  /**
   * The client of this organization's Lago (its URL and decrypted key). Throws OrganizationNotFoundError, or
   * OrganizationSecretsNotConfiguredError when its key is stored but ORGANIZATION_SECRETS_KEY is unset.
   */
  for: (organizationId: string) => Promise<LagoClient>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The default organization's Lago API client (one keep-alive undici Pool to LAGO_API_URL, key LAGO_API_KEY). */
    lago: LagoClient
    /** Every organization's Lago client: `await fastify.lagoClients.for(organizationId)`. */
    lagoClients: LagoClients
  }
}

export default fp(async function lago (fastify) {
  const { config, metrics } = fastify
  const duration = new Histogram({
    name: 'lago_request_duration_seconds',
    help: 'HTTP attempts to Lago by operation, outcome (status code, or the unavailability kind) and organization',
    labelNames: ['operation', 'outcome', 'organization'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [metrics.registry]
  })

  const build = (organizationId: string, baseUrl: string, apiKey: string | undefined): LagoClient => new LagoClient({
    baseUrl,
    apiKey,
    headersTimeoutMs: config.LAGO_TIMEOUT_MS,
    requestTimeoutMs: config.LAGO_TIMEOUT_MS,
    connectTimeoutMs: Math.min(config.LAGO_TIMEOUT_MS, 5_000),
    connections: config.LAGO_CONNECTIONS,
    maxRetryAfterMs: fastify.tuning.lagoRetryAfterMaxMs,
    observer (attempt) {
      const outcome = attempt.statusCode !== null ? String(attempt.statusCode) : (attempt.error !== undefined && 'kind' in attempt.error ? attempt.error.kind : 'error')
      duration.observe({ operation: attempt.operation, outcome, organization: organizationId }, attempt.durationMs / 1000)
      // Lago down, throttling or refusing the key is worth a warning; a 404 or 422 is an answer the caller handles.
      if (attempt.error !== undefined && (attempt.statusCode === null || attempt.statusCode >= 500 || [401, 403, 408, 425, 429].includes(attempt.statusCode))) {
        fastify.log.warn({ organization: organizationId, lago: { operation: attempt.operation, path: attempt.path, statusCode: attempt.statusCode, durationMs: Math.round(attempt.durationMs) }, err: attempt.error }, 'Lago request failed')
      }
    }
  })
  const client = build(DEFAULT_ORGANIZATION_ID, config.LAGO_API_URL, config.LAGO_API_KEY)
  // The service must start without Lago credentials (ingestion still works); calls then fail with
  // LagoNotConfiguredError, and this says why at boot.
  if (!client.configured) fastify.log.warn('LAGO_API_KEY is not set: usage events are stored but nothing can be sent to Lago')

  fastify.decorate('lago', client)

  // Clients of the other organizations (and of default once its URL or key is set through the admin API).
  const { organizations } = fastify
  const built = new Map<string, Promise<LagoClient>>()
  const clientFor = async (organizationId: string): Promise<LagoClient> => {
    const { apiUrl, apiKey } = await organizations.lagoCredentials(organizationId)
    if (organizationId === DEFAULT_ORGANIZATION_ID && apiUrl === config.LAGO_API_URL && apiKey === config.LAGO_API_KEY) return client
    return build(organizationId, apiUrl, apiKey)
  }
  const retire = (pending: Promise<LagoClient> | undefined): void => {
    // Requests in flight finish first: undici's close waits for them.
    pending?.then(async (c) => { if (c !== client) await c.close() }).catch(() => {})
  }
  organizations.on('changed', (id) => {
    const pending = built.get(id)
    built.delete(id)
    retire(pending)
  })
  fastify.decorate('lagoClients', {
    for: async (organizationId: string) => {
      let pending = built.get(organizationId)
      if (pending === undefined) {
        pending = clientFor(organizationId)
        built.set(organizationId, pending)
        // A failure (unknown organization, unreadable key) is not cached: the next call tries again.
        pending.catch(() => { if (built.get(organizationId) === pending) built.delete(organizationId) })
      }
      return await pending
    }
  } satisfies LagoClients)

  fastify.addHook('onClose', async () => {
    const others = await Promise.allSettled([...built.values()])
    built.clear()
    await Promise.all(others.map(async (r) => { if (r.status === 'fulfilled' && r.value !== client) await r.value.close() }))
    await client.close()
  })
}, { name: 'lago', dependencies: ['config', 'metrics', 'organizations'] })
