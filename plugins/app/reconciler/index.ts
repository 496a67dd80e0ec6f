import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import { DEFAULT_ORGANIZATION_ID } from '../../../db/database.js'
import type { ReconciliationStateBody } from '../../../schemas/litellm.js'
import { Reconciler, RECONCILIATION_NAME, type RunReport } from './reconciler.js'
import { readState } from './repository.js'
import { SpendLogsClient } from './spend-logs-client.js'

export type OrganizationReconciliationState = ReconciliationStateBody & { organization_id: string }

declare module 'fastify' {
  interface FastifyInstance {
    reconciler: {
      /** An organization's progress and last outcome (shared by every replica); default's when none is named. */
      state: (organizationId?: string) => Promise<ReconciliationStateBody>
      /** The state of every organization whose LiteLLM is reconciled, by id. */
      states: () => Promise<OrganizationReconciliationState[]>
      /** Runs one pass over an organization's LiteLLM now (default's when none is named; the timer runs every one). */
      run: (organizationId?: string) => Promise<RunReport | { status: 'disabled' }>
    }
  }
}

const WINDOW_MS = 15 * 60_000
const LEASE_MS = 10 * 60_000
const MAX_WINDOWS_PER_RUN = 200

/** One organization's LiteLLM and its reconciler; `credentials` tells when it must be rebuilt (never the key itself). */
interface Lane { instance: Reconciler, client: SpendLogsClient, credentials: string }

/**
 * Reconciliation with LiteLLM's spend logs, per organization: default's LiteLLM (LITELLM_URL, LITELLM_MASTER_KEY; its
 * calls routed by organization routes like pushed ones) and each active organization's own (litellm_url,
 * litellm_master_key; its calls are its own). Each has its own cursor and lease (litellm_reconciliation's
 * (organization_id, 'spend_logs') row).
 */
export default fp(async function reconciler (fastify) {
  const { config, db, log, metrics, organizations } = fastify
  const { LITELLM_URL: url, LITELLM_MASTER_KEY: key } = config
  const defaultDisabled = url === undefined || key === undefined
    ? `${url === undefined ? 'LITELLM_URL' : 'LITELLM_MASTER_KEY'} is not set`
    : null
  if (defaultDisabled !== null && (url !== undefined || key !== undefined)) log.warn(`reconciliation with LiteLLM's spend logs is off: ${defaultDisabled}`)

  const runs = new Counter({ name: 'litellm_reconcile_runs_total', help: 'Reconciliation passes over LiteLLM\'s spend logs, by outcome and organization', labelNames: ['outcome', 'organization'] as const, registers: [metrics.registry] })
  const calls = new Counter({ name: 'litellm_reconcile_calls_total', help: 'Spend-log rows reconciled: stored (missing here), duplicate (already here), conflict, rejected; by organization', labelNames: ['outcome', 'organization'] as const, registers: [metrics.registry] })

  const lanes = new Map<string, Lane>()
  const build = (organizationId: string, litellm: { url: string, masterKey: string }, credentials: string): Lane => {
    const client = new SpendLogsClient({ baseUrl: litellm.url, masterKey: litellm.masterKey, timeoutMs: config.LITELLM_TIMEOUT_MS, api: config.LITELLM_SPEND_LOGS_API })
    const instance = new Reconciler({
      db,
      organizationId,
      source: client,
      store: fastify.litellm.store, // a plain closure (no `this`), as the webhook routes pass it too
      log: log.child({ component: 'reconciler', organization: organizationId }),
      lagMs: config.LITELLM_RECONCILE_LAG_MS,
      lookbackMs: config.LITELLM_RECONCILE_LOOKBACK_MS,
      windowMs: config.LITELLM_SPEND_LOGS_API === 'ui' ? WINDOW_MS : 86_400_000,
      maxWindowsPerRun: MAX_WINDOWS_PER_RUN,
      leaseMs: LEASE_MS
    })
    return { instance, client, credentials }
  }
  const retire = async (lane: Lane): Promise<void> => {
    if (lane.instance.running) await lane.instance.run().catch(() => {})
    await lane.client.close()
  }

  // Builds, rebuilds or drops an organization's lane after it changed: a disabled organization, or one without a
  // LiteLLM, has none. One sync at a time, so that two changes in a row cannot build two lanes.
  let syncing: Promise<void> = Promise.resolve()
  const sync = async (organizationId: string): Promise<void> => {
    syncing = syncing.then(async () => {
      const organization = await organizations.get(organizationId)
      let litellm: { url: string, masterKey: string } | null = null
      if (organization?.status === 'active') {
        litellm = await organizations.litellmCredentials(organizationId).catch((err: unknown) => {
          log.error({ err, organization: organizationId }, 'reconciliation: the organization\'s LiteLLM master key cannot be read; its spend logs are not reconciled')
          return null
        })
      }
      const credentials = litellm !== null ? createHash('sha256').update(`${litellm.url}\u0000${litellm.masterKey}`).digest('hex') : null
      const current = lanes.get(organizationId)
      if (current?.credentials === credentials) return
      if (current !== undefined) {
        lanes.delete(organizationId)
        await retire(current)
      }
      if (litellm !== null && credentials !== null) lanes.set(organizationId, build(organizationId, litellm, credentials))
    }).catch((err: unknown) => { log.error({ err, organization: organizationId }, 'reconciliation: could not apply an organization change') })
    await syncing
  }
  for (const organization of await organizations.list()) await sync(organization.id)
  const onChanged = (id: string): void => { void sync(id) }
  organizations.on('changed', onChanged)

  const run = async (organizationId = DEFAULT_ORGANIZATION_ID): Promise<RunReport | { status: 'disabled' }> => {
    const lane = lanes.get(organizationId)
    if (lane === undefined) return { status: 'disabled' }
    const report = await lane.instance.run()
    runs.inc({ outcome: report.status, organization: organizationId })
    if (report.status !== 'busy') {
      for (const outcome of ['stored', 'duplicate', 'conflict', 'rejected'] as const) {
        if (report.counts[outcome] > 0) calls.inc({ outcome, organization: organizationId }, report.counts[outcome])
      }
    }
    return report
  }

  const state = async (organizationId = DEFAULT_ORGANIZATION_ID): Promise<ReconciliationStateBody> => {
    const lane = lanes.get(organizationId)
    const row = await readState(db, organizationId, RECONCILIATION_NAME)
    const iso = (d: Date | null | undefined): string | null => d != null ? d.toISOString() : null
    const skipped = row?.last_counts?.skipped_windows ?? 0
    const status: ReconciliationStateBody['status'] = lane === undefined
      ? 'disabled'
      : lane.instance.running || (row?.lease_until != null && row.lease_until > new Date())
        ? 'running'
        : row?.last_error != null ? 'failing' : skipped > 0 ? 'blocked' : 'idle'
    const disabled = organizationId === DEFAULT_ORGANIZATION_ID ? defaultDisabled : 'the organization has no litellm_url and litellm_master_key, or is disabled'
    return {
      status,
      ...(lane === undefined && disabled !== null ? { reason: disabled } : skipped > 0 ? { reason: `${skipped} window(s) skipped in the last run: LiteLLM's Lago callback delivered calls then (see README)` } : {}),
      cursor: iso(row?.cursor),
      last_run_at: iso(row?.last_run_at),
      last_success_at: iso(row?.last_success_at),
      last_error: row?.last_error ?? null,
      last_counts: row?.last_counts ?? null
    }
  }

  fastify.decorate('reconciler', {
    run,
    state,
    states: async () => await Promise.all([...lanes.keys()].sort().map(async (id) => ({ organization_id: id, ...await state(id) })))
  })

  // Every organization's LiteLLM in turn, then the interval.
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const tick = (): void => {
    void (async () => {
      for (const id of [...lanes.keys()]) {
        if (stopped) break
        await run(id).catch((err: unknown) => { log.error({ err, organization: id }, 'reconciliation pass crashed') })
      }
    })().finally(() => {
      if (!stopped) timer = setTimeout(tick, config.LITELLM_RECONCILE_INTERVAL_MS).unref()
    })
  }
  fastify.addHook('onReady', async () => { timer = setTimeout(tick, 1000).unref() })
  fastify.addHook('onClose', async () => {
    stopped = true
    clearTimeout(timer)
    organizations.off('changed', onChanged)
    await syncing
    for (const lane of lanes.values()) await retire(lane)
    lanes.clear()
  })
}, { name: 'reconciler', dependencies: ['config', 'db', 'litellm', 'metrics', 'organizations'] })
