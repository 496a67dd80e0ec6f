import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import { Forwarder, type ForwarderState } from './forwarder.js'
import { IngestionActivity } from './ingestion-activity.js'
import { backlogs, releaseMappedCustomers, retryEvents, unmappedCustomers, type Backlog, type RetryFilter } from './repository.js'
import { databaseUnavailable } from '../../../db/errors.js'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'
import { honouringEndedSubscriptions } from '../lago-webhooks/subscriptions.js'

export type ForwarderView = ForwarderState | { status: 'disabled', reason: string }

/** One organization's forwarding, as /health and /webhooks/stats show it. */
export interface OrganizationForwarding {
  id: string
  status: 'active' | 'disabled'
  forwarder: ForwarderView
  backlog: Backlog
}

export type { RetryFilter }

declare module 'fastify' {
  interface FastifyInstance {
    forwarder: {
      /** The default organization's forwarding (what a single-organization setup has always shown). */
      state: () => ForwarderView
      /** One organization's forwarding: disabled and why, else its lane's state on this replica. */
      stateOf: (organization: string) => Promise<ForwarderView>
      /** Each organization's forwarding and backlog (only these organizations when named). */
      organizations: (only?: string[]) => Promise<OrganizationForwarding[]>
      /**
       * Unmapped events of these customers of an organization (default when not named) go back to the queue; with
       * no customers named, those of every customer now mapped (of that organization, or of every organization).
       */
      releaseUnmapped: (customerIds?: string[], organization?: string) => Promise<number>
      /**
       * Failed and dead events of the filter's organization matching it go back to the queue (never delivered ones);
       * wakes that organization's lane.
       */
      retry: (filter: RetryFilter) => Promise<number>
    }
  }
}

const EMPTY_BACKLOG: Backlog = { unsent: 0, oldest_unsent_age_seconds: null }

export default fp(async function forwarder (fastify) {
  const { bootstrap, config, tuning, db, lago, lagoClients, log, metrics, organizations, usageEvents, subscriptions } = fastify
  const disabledReason = !config.FORWARDER_ENABLED ? 'FORWARDER_ENABLED=false' : null

  const settled = new Counter({
    name: 'forwarder_events_total',
    help: 'Usage events settled by the forwarder, per organization: forwarded, duplicate (Lago already had it), dead, retry, released',
    labelNames: ['organization', 'outcome'] as const,
    registers: [metrics.registry]
  })

  // Only active organizations with a Lago key are forwarded; the others' events wait (and say why in /health).
  const notForwarded = async (id: string): Promise<string | null> => {
    const organization = await organizations.get(id)
    if (organization === null) return 'unknown organization'
    if (organization.status !== 'active') return 'organization disabled: its events wait'
    if (id === DEFAULT_ORGANIZATION_ID && !organization.hasLagoApiKey && !lago.configured) return 'LAGO_API_KEY is not set'
    if (id !== DEFAULT_ORGANIZATION_ID && !organization.hasLagoApiKey) return 'the organization has no Lago API key'
    return null
  }
  const forwardable = async (): Promise<string[]> => {
    const all = await organizations.list()
    const ids: string[] = []
    for (const o of all) if (await notForwarded(o.id) === null) ids.push(o.id)
    return ids
  }

  const releaseUnmapped = async (customerIds?: string[], organization?: string): Promise<number> => {
    const scope = organization !== undefined || customerIds !== undefined ? { organization: organization ?? DEFAULT_ORGANIZATION_ID, customerIds } : undefined
    const n = await releaseMappedCustomers(db, scope)
    if (n > 0) instance?.wake(scope?.organization)
    return n
  }

  const retry = async (filter: RetryFilter): Promise<number> => {
    const n = await retryEvents(db, filter)
    if (n > 0) instance?.wake(filter.organization)
    return n
  }

  // A customer whose subscription Lago ended (its webhooks say so) is not provisioned a new one automatically.
  const resolveFor = async (organization: string, customerIds: string[]): Promise<Awaited<ReturnType<typeof subscriptions.resolve>>> => {
    const [client, resolver] = await Promise.all([lagoClients.for(organization), subscriptions.for(organization)])
    return await honouringEndedSubscriptions(db, organization, client, async (ids) => await resolver.resolve(ids))(customerIds)
  }

  // Ingestion first: while it has committed within the last second, only FORWARDER_CONCURRENCY_WHILE_INGESTING workers forward.
  const ingestion = new IngestionActivity(1000)
  const instance = disabledReason === null
    ? new Forwarder({
      db,
      organizations: forwardable,
      lagoFor: async (organization) => await lagoClients.for(organization),
      metricCodeFor: async (organization) => (await organizations.settings(organization)).metricCode,
      resolveSubscriptions: resolveFor,
      log: log.child({ component: 'forwarder' }),
      batchSize: config.FORWARDER_BATCH_SIZE,
      concurrency: config.FORWARDER_CONCURRENCY,
      pollIntervalMs: tuning.forwarderPollIntervalMs,
      leaseMs: config.FORWARDER_LEASE_MS,
      maxAttempts: config.MAX_ATTEMPTS,
      retry: { baseMs: config.RETRY_BASE_DELAY_MS, maxMs: config.RETRY_MAX_DELAY_MS },
      probe: { baseMs: config.LAGO_PROBE_INTERVAL_MS, maxMs: tuning.lagoProbeMaxIntervalMs },
      onSettled: (organization, outcome, count) => settled.inc({ organization, outcome }, count),
      ingestionWriting: () => ingestion.writing,
      ingestionPauseMs: () => ingestion.nextPauseMs(),
      concurrencyWhileIngesting: config.FORWARDER_CONCURRENCY_WHILE_INGESTING
    })
    : null

  const stateOf = async (id: string): Promise<ForwarderView> => {
    const reason = disabledReason ?? await notForwarded(id)
    if (reason !== null) return { status: 'disabled', reason }
    // Not read yet (created a moment ago): running as far as anyone can tell.
    return instance?.state(id) ?? { status: 'running', since: new Date().toISOString(), next_probe_at: null, last_error: null }
  }

  // Paused organizations, for alerting: 1 while paused, by reason.
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'forwarder_organization_paused',
    help: 'Whether an organization\'s forwarding is paused (its Lago down, rate limiting or refusing its key), by reason',
    labelNames: ['organization', 'reason'] as const,
    registers: [metrics.registry],
    collect () {
      this.reset()
      for (const id of instance?.organizations ?? []) {
        const state = instance?.state(id)
        if (state != null && state.status !== 'running' && state.status !== 'stopped') this.set({ organization: id, reason: state.status }, 1)
      }
    }
  })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'forwarder_backlog_events',
    help: 'Usage events not yet in Lago (pending or failed), per organization (counted up to 100000)',
    labelNames: ['organization'] as const,
    registers: [metrics.registry],
    async collect () {
      this.reset()
      const all = (await organizations.list()).map((o) => o.id)
      for (const [id, b] of await backlogs(db, all)) this.set({ organization: id }, b.unsent)
    }
  })

  fastify.decorate('forwarder', {
    state: () => {
      if (disabledReason !== null) return { status: 'disabled' as const, reason: disabledReason }
      if (!lago.configured && instance?.state(DEFAULT_ORGANIZATION_ID) == null) return { status: 'disabled' as const, reason: 'LAGO_API_KEY is not set' }
      return instance?.state(DEFAULT_ORGANIZATION_ID) ?? { status: 'running' as const, since: new Date().toISOString(), next_probe_at: null, last_error: null }
    },
    stateOf,
    async organizations (only) {
      const all = (await organizations.list()).filter((o) => only === undefined || only.includes(o.id))
      const backlog = await backlogs(db, all.map((o) => o.id))
      return await Promise.all(all.map(async (o) => ({
        id: o.id,
        status: o.status,
        forwarder: await stateOf(o.id),
        backlog: backlog.get(o.id) ?? EMPTY_BACKLOG
      })))
    },
    releaseUnmapped,
    retry
  })

  if (instance === null) {
    log.warn(`usage events are stored but not forwarded to Lago: ${disabledReason}`)
    return
  }

  const wake = (count: number, meanLatencyMs?: number): void => {
    ingestion.committed(count, meanLatencyMs)
    instance.wake()
  }
  // An organization created, changed (key rotated), enabled or disabled: its lane follows at once.
  const changed = (id: string): void => {
    instance.organizationChanged(id).catch((err: unknown) => {
      if (!databaseUnavailable(err)) log.warn({ err, organization: id }, 'forwarder: could not take an organization change into account; retried at the next refresh')
    })
  }
  // Unmapped customers may have been created in Lago directly: look them up again now and then.
  let recheck: NodeJS.Timeout | undefined
  const recheckOrganization = async (organization: string): Promise<void> => {
    try {
      const customers = await unmappedCustomers(db, organization, 100)
      if (customers.length > 0) {
        await resolveFor(organization, customers)
        await releaseUnmapped(customers, organization)
      }
    } catch (err) {
      // A PostgreSQL outage is logged once by the connection layer, not by every timer tick.
      if (!databaseUnavailable(err)) log.warn({ err, organization }, 'could not re-check unmapped usage events')
    }
  }
  const recheckUnmapped = async (): Promise<void> => {
    for (const organization of instance.organizations) await recheckOrganization(organization)
  }
  // Events that arrived before the organization's plan existed (bootstrap still running, or Lago booting) were
  // unmapped with plan_not_found: look again as soon as the plan is there, not at the next periodic re-check.
  const bootstrapped = (organization: string): void => { void recheckOrganization(organization) }

  fastify.addHook('onReady', async () => {
    usageEvents.signals.on('committed', wake)
    organizations.on('changed', changed)
    instance.start()
    bootstrap.events.on('done', bootstrapped)
    recheck = setInterval(() => { void recheckUnmapped() }, tuning.unmappedRecheckIntervalMs)
    recheck.unref()
  })
  fastify.addHook('onClose', async () => {
    clearInterval(recheck)
    bootstrap.events.off('done', bootstrapped)
    usageEvents.signals.off('committed', wake)
    organizations.off('changed', changed)
    await instance.stop()
  })
}, { name: 'forwarder', dependencies: ['db', 'lago', 'organizations', 'usage-events', 'subscriptions', 'metrics', 'bootstrap'] })
