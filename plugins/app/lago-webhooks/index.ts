import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import { actOn, customerOf } from './act.js'
import { LagoWebhookVerifier } from './verify.js'
import { LagoOrganizationRouter, type Routed } from './routing.js'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'
import { databaseUnavailable } from '../../../db/errors.js'
import { countLagoErrors, countUnprocessed, listWebhooks, processNext, storeWebhook, type IncomingWebhook, type StoredWebhookRow, type WebhookFilter } from './repository.js'
import { localInvoiceList } from './invoices.js'
import type { InvoiceListBody } from '../../../schemas/invoices.js'

// What a route may need besides the decorator: the errors a delivery is refused with.
export { PublicKeyUnavailableError, WebhookSignatureError } from './verify.js'

export interface LagoWebhooks {
  /** The default organization's verifier (LAGO_WEBHOOK_HMAC_KEY, the JWT key of LAGO_API_URL). */
  verifier: LagoWebhookVerifier
  /** An organization's verifier: its own HMAC key, the JWT key its own Lago publishes. */
  verifierFor: (organization: string) => Promise<LagoWebhookVerifier>
  /**
   * Which of our organizations a delivery belongs to, by the organization_id of its body (Lago's); a body without
   * one goes to default.
   */
  route: (lagoOrganizationId: string | null) => Promise<Routed>
  /** Records the Lago organization id of an organization (a verified delivery of a single-organization setup). */
  adopt: (organization: string, lagoOrganizationId: string) => Promise<void>
  /** Stores a verified webhook once per unique key and wakes the worker; says whether it was a repeat. */
  store: (webhook: Omit<IncomingWebhook, 'customerExternalId'>) => Promise<{ id: number, duplicate: boolean }>
  /** Acts on every due webhook now (the worker does it in the background; tests and the shutdown use this). */
  drain: () => Promise<number>
  /** Counts a refused delivery (metrics). */
  refused: (reason: string) => void
  /** Stored webhooks, newest first. */
  list: (filter: WebhookFilter) => Promise<{ rows: StoredWebhookRow[], total: number }>
  /** A customer's invoices as recorded from Lago's invoice webhooks; null when none are recorded. */
  /** organizationId: whose record (default when unset). */
  localInvoices: (customerId: string, page: number, perPage: number, organizationId?: string) => Promise<InvoiceListBody | null>
}

declare module 'fastify' {
  interface FastifyInstance {
    lagoWebhooks: LagoWebhooks
  }
}

/**
 * Lago's outgoing webhooks: verified and stored by POST /webhooks/lago, acted on here, asynchronously and durably.
 * A worker takes the stored webhooks not yet acted on (FOR UPDATE SKIP LOCKED, so replicas share the work), acts
 * with database writes only and marks each processed in the same transaction: a crash in between redoes the act.
 */
export default fp(async function lagoWebhooks (fastify) {
  const { config, db, lago, lagoClients, log, metrics, forwarder, organizations } = fastify
  const issuers = config.LAGO_WEBHOOK_ISSUER
  const verifier = new LagoWebhookVerifier({
    hmacKeys: [config.LAGO_WEBHOOK_HMAC_KEY, config.LAGO_WEBHOOK_HMAC_KEY_PREVIOUS].filter((k): k is string => k !== undefined),
    issuers,
    fetchPublicKey: async () => await lago.getWebhookPublicKey()
  })

  const webhookLog = log.child({ component: 'lago-webhooks' })

  // One verifier per organization, rebuilt when the organization changes (a new HMAC key, another Lago).
  const verifiers = new Map<string, Promise<LagoWebhookVerifier>>()
  const buildVerifier = async (id: string): Promise<LagoWebhookVerifier> => {
    const [hmacKey, { apiUrl }] = await Promise.all([organizations.lagoWebhookHmacKey(id), organizations.lagoCredentials(id)])
    // The default organization keeps its configured keys (and the previous one, during a rotation).
    if (id === DEFAULT_ORGANIZATION_ID && hmacKey === config.LAGO_WEBHOOK_HMAC_KEY && apiUrl === config.LAGO_API_URL) return verifier
    const previous = id === DEFAULT_ORGANIZATION_ID ? config.LAGO_WEBHOOK_HMAC_KEY_PREVIOUS : undefined
    return new LagoWebhookVerifier({
      hmacKeys: [hmacKey, previous].filter((k): k is string => k !== undefined),
      // The JWT issuer is the Lago instance's own URL: the organization's, or the configured one.
      issuers: [apiUrl, ...issuers],
      fetchPublicKey: async () => await (await lagoClients.for(id)).getWebhookPublicKey()
    })
  }
  const verifierFor = async (id: string): Promise<LagoWebhookVerifier> => {
    let pending = verifiers.get(id)
    if (pending === undefined) {
      pending = buildVerifier(id)
      verifiers.set(id, pending)
      pending.catch(() => { if (verifiers.get(id) === pending) verifiers.delete(id) })
    }
    return await pending
  }
  const forget = (id: string): void => { verifiers.delete(id) }
  organizations.on('changed', forget)

  const router = new LagoOrganizationRouter({
    directory: {
      byLagoOrganizationId: async (lagoId) => (await organizations.byLagoOrganizationId(lagoId))?.id ?? null,
      askable: async () => (await organizations.list())
        .filter((o) => o.status === 'active' && (o.hasLagoApiKey || (o.id === DEFAULT_ORGANIZATION_ID && lago.configured)))
        .map((o) => ({ organization: o.id, lagoOrganizationId: o.lagoOrganizationId })),
      setLagoOrganizationId: async (id, lagoId) => { await organizations.update(id, { lagoOrganizationId: lagoId }) },
      soleUnidentified: async () => {
        const all = await organizations.list()
        return all.length === 1 && all[0].lagoOrganizationId === null && all[0].status === 'active' ? all[0].id : null
      }
    },
    // Asked with the organization's own key, so the answer is that organization's.
    lagoOrganizationIdOf: async (id) => {
      const { webhook_endpoints: endpoints } = await (await lagoClients.for(id)).listWebhookEndpoints({ page: 1, per_page: 1 })
      return endpoints[0]?.lago_organization_id ?? null
    },
    onLearnError: (organization, lagoOrganizationId, err) => {
      webhookLog.error({ err, organization, lago_organization_id: lagoOrganizationId }, 'the Lago organization of this organization is already another organization\'s: its webhooks go to that one')
    }
  })

  const received = new Counter({
    name: 'lago_webhooks_total',
    help: 'Webhooks from Lago by type and outcome (stored, duplicate, refused)',
    labelNames: ['type', 'outcome'] as const,
    registers: [metrics.registry]
  })
  metrics.gauge('lago_webhooks_unprocessed', 'Stored Lago webhooks not yet acted on', async () => await countUnprocessed(db))
  metrics.gauge('usage_events_lago_error', 'Usage events Lago stored but reported it cannot bill (status lago_error)', async () => await countLagoErrors(db))

  let running: Promise<number> | null = null
  let again = false

  const drainOnce = async (): Promise<number> => {
    let done = 0
    for (;;) {
      const r = await processNext(db, actOn)
      if (r === null) return done
      done++
      if ('error' in r) {
        webhookLog.error({ err: r.error, webhook: r.id }, 'acting on a Lago webhook failed; retried later')
        continue
      }
      webhookLog.info({ webhook: r.id, outcome: r.result.outcome }, 'Lago webhook acted on')
      if (r.result.releaseCustomers.length > 0) await forwarder.releaseUnmapped(r.result.releaseCustomers, r.result.organization)
    }
  }
  // One drain at a time per instance; a wake during a drain runs another pass after it.
  const drain = async (): Promise<number> => {
    if (running !== null) {
      again = true
      return await running
    }
    running = (async () => {
      let total = 0
      do {
        again = false
        total += await drainOnce()
      } while (again)
      return total
    })().finally(() => { running = null })
    return await running
  }
  const wake = (): void => {
    // A database outage is reported once by the database plugin; the stored webhooks wait for the next poll.
    drain().catch((err: unknown) => { if (!databaseUnavailable(err)) webhookLog.warn({ err }, 'could not act on stored Lago webhooks; retried at the next poll') })
  }

  fastify.decorate('lagoWebhooks', {
    verifier,
    verifierFor,
    async route (lagoOrganizationId) {
      return lagoOrganizationId === null ? { organization: DEFAULT_ORGANIZATION_ID } : await router.route(lagoOrganizationId)
    },
    async adopt (organization, lagoOrganizationId) {
      await organizations.update(organization, { lagoOrganizationId })
      webhookLog.info({ organization, lago_organization_id: lagoOrganizationId }, 'Lago organization id recorded from a verified webhook')
    },
    async store (webhook) {
      const stored = await storeWebhook(db, { ...webhook, customerExternalId: customerOf(webhook.body) })
      received.inc({ type: webhook.webhookType, outcome: stored.duplicate ? 'duplicate' : 'stored' })
      if (!stored.duplicate) wake()
      return stored
    },
    drain,
    refused (reason) {
      received.inc({ type: 'unknown', outcome: 'refused' })
      webhookLog.warn({ reason }, 'refused a Lago webhook delivery')
    },
    list: async (filter) => await listWebhooks(db, filter),
    localInvoices: async (customerId, page, perPage, organizationId) => await localInvoiceList(db, customerId, page, perPage, organizationId)
  })

  let poll: NodeJS.Timeout | undefined
  fastify.addHook('onReady', async () => {
    wake()
    poll = setInterval(wake, fastify.tuning.lagoWebhookPollIntervalMs)
    poll.unref()
  })
  fastify.addHook('onClose', async () => {
    organizations.off('changed', forget)
    clearInterval(poll)
    await running?.catch(() => {})
  })
}, { name: 'lago-webhooks', dependencies: ['config', 'db', 'lago', 'metrics', 'forwarder', 'organizations'] })
