import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'
import { auditOrganization, type AuditFilter, type AuditReport } from './audit.js'

export type { AuditReport } from './audit.js'

declare module 'fastify' {
  interface FastifyInstance {
    billingAudit: {
      /**
       * Audits one organization against its own Lago: per customer, what was forwarded this billing period against
       * Lago's current usage. Without a filter the report becomes the organization's last one.
       */
      run: (organizationId: string, filter?: AuditFilter) => Promise<AuditReport>
      /** The periodic audit: every active organization with a Lago key, each against its own Lago. */
      runAll: () => Promise<AuditReport[]>
      /** The organization's last full audit on this instance (periodic, or unfiltered on request); null before one. */
      last: (organizationId: string) => AuditReport | null
      /** Whether the periodic audit covers the organization (active, with a Lago key), for saying why none ran. */
      covers: (organizationId: string) => Promise<boolean>
    }
  }
}

const AUDIT_CONCURRENCY = 4

/**
 * The billing audit: on request (one organization) and every BILLING_AUDIT_INTERVAL_MS in the background (every
 * active organization, each against its own Lago). Mismatches are logged and counted per organization in the
 * billing_audit_mismatches gauge. A failing organization, or a Lago error for one customer, stops no other.
 */
export default fp(async function billingAudit (fastify) {
  const { config, db, lago, lagoClients, log, metrics, organizations } = fastify
  const last = new Map<string, AuditReport>()

  const run = async (organizationId: string, filter: AuditFilter = {}): Promise<AuditReport> => {
    const [client, settings] = await Promise.all([lagoClients.for(organizationId), organizations.settings(organizationId)])
    const report = await auditOrganization({ db, organizationId, lago: client, metricCode: settings.metricCode, concurrency: AUDIT_CONCURRENCY, lagoLagMs: config.BILLING_AUDIT_LAGO_LAG_MS }, filter)
    if (filter.customerId === undefined && filter.from === undefined && filter.to === undefined) last.set(organizationId, report)
    return report
  }

  /** Organizations the periodic audit covers: active, with a Lago key (default's may come from LAGO_API_KEY). */
  const audited = async (): Promise<string[]> => (await organizations.list())
    .filter((o) => o.status === 'active' && (o.hasLagoApiKey || (o.id === DEFAULT_ORGANIZATION_ID && lago.configured)))
    .map((o) => o.id)

  const runAll = async (): Promise<AuditReport[]> => {
    const ids = await audited()
    // An organization no longer audited (disabled, its key removed) has no last report to show or count.
    for (const id of last.keys()) if (!ids.includes(id)) last.delete(id)
    // One organization after another: each audits a few customers at a time already, and all at once would compete
    // with ingestion for the pool every interval.
    const reports: AuditReport[] = []
    for (const id of ids) {
      try {
        reports.push(await run(id))
      } catch (err) {
        log.warn({ err, organization: id }, 'billing audit of an organization failed; it runs again at the next interval')
      }
    }
    return reports
  }

  // eslint-disable-next-line no-new
  new Gauge({
    name: 'billing_audit_mismatches',
    help: 'Customers whose forwarded usage differs from Lago\'s at the organization\'s last full billing audit',
    labelNames: ['organization'] as const,
    registers: [metrics.registry],
    collect () {
      this.reset()
      for (const [organization, report] of last) this.set({ organization }, report.mismatches)
    }
  })
  fastify.decorate('billingAudit', {
    run,
    runAll,
    last: (organizationId: string) => last.get(organizationId) ?? null,
    covers: async (organizationId: string) => (await audited()).includes(organizationId)
  })

  if (config.BILLING_AUDIT_INTERVAL_MS === 0) return
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | null = null
  const periodic = async (): Promise<void> => {
    try {
      for (const report of await runAll()) {
        for (const c of report.customers.filter((r) => r.status !== 'ok')) {
          log.warn({ organization: report.organization_id, audit: c }, c.status === 'mismatch' ? 'billing audit: forwarded usage and Lago disagree' : 'billing audit: could not audit a customer')
        }
      }
    } catch (err) {
      log.warn({ err }, 'billing audit failed; it runs again at the next interval')
    }
  }
  fastify.addHook('onReady', async () => {
    timer = setInterval(() => {
      // A run slower than the interval is not overlapped by the next one.
      running ??= periodic().finally(() => { running = null })
    }, config.BILLING_AUDIT_INTERVAL_MS)
    timer.unref()
  })
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    // A run in flight ends before the database closes.
    await running
  })
}, { name: 'billing-audit', dependencies: ['config', 'db', 'lago', 'metrics', 'organizations'] })
