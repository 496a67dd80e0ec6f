import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { ReconciliationStateBody } from '../../../schemas/litellm.js'
import { Reconciler, RECONCILIATION_NAME, type RunReport } from './reconciler.js'
import { readState } from './repository.js'
import { SpendLogsClient } from './spend-logs-client.js'

declare module 'fastify' {
  interface FastifyInstance {
    reconciler: {
      /** Progress and last outcome (shared by every replica). */
      state: () => Promise<ReconciliationStateBody>
      /** Runs one pass now (also what the timer does). */
      run: () => Promise<RunReport | { status: 'disabled' }>
    }
  }
}

const WINDOW_MS = 15 * 60_000
const LEASE_MS = 10 * 60_000
const MAX_WINDOWS_PER_RUN = 200

export default fp(async function reconciler (fastify) {
  const { config, db, log, metrics } = fastify
  const { LITELLM_URL: url, LITELLM_MASTER_KEY: key } = config
  const disabled = url === undefined || key === undefined
    ? `${url === undefined ? 'LITELLM_URL' : 'LITELLM_MASTER_KEY'} is not set`
    : null
  if (disabled !== null && (url !== undefined || key !== undefined)) log.warn(`reconciliation with LiteLLM's spend logs is off: ${disabled}`)

  const runs = new Counter({ name: 'litellm_reconcile_runs_total', help: 'Reconciliation passes over LiteLLM\'s spend logs, by outcome', labelNames: ['outcome'] as const, registers: [metrics.registry] })
  const calls = new Counter({ name: 'litellm_reconcile_calls_total', help: 'Spend-log rows reconciled: stored (missing here), duplicate (already here), conflict, rejected', labelNames: ['outcome'] as const, registers: [metrics.registry] })

  const client = disabled === null
    ? new SpendLogsClient({ baseUrl: url as string, masterKey: key as string, timeoutMs: config.LITELLM_TIMEOUT_MS, api: config.LITELLM_SPEND_LOGS_API })
    : null
  const instance = client !== null
    ? new Reconciler({
      db,
      source: client,
      store: fastify.litellm.store, // a plain closure (no `this`), as the webhook routes pass it too
      log: log.child({ component: 'reconciler' }),
      lagMs: config.LITELLM_RECONCILE_LAG_MS,
      lookbackMs: config.LITELLM_RECONCILE_LOOKBACK_MS,
      windowMs: config.LITELLM_SPEND_LOGS_API === 'ui' ? WINDOW_MS : 86_400_000,
      maxWindowsPerRun: MAX_WINDOWS_PER_RUN,
      leaseMs: LEASE_MS
    })
    : null

  const run = async (): Promise<RunReport | { status: 'disabled' }> => {
    if (instance === null) return { status: 'disabled' }
    const report = await instance.run()
    runs.inc({ outcome: report.status })
    if (report.status !== 'busy') {
      for (const outcome of ['stored', 'duplicate', 'conflict', 'rejected'] as const) if (report.counts[outcome] > 0) calls.inc({ outcome }, report.counts[outcome])
    }
    return report
  }

  fastify.decorate('reconciler', {
    run,
    async state () {
      const row = await readState(db, RECONCILIATION_NAME)
      const iso = (d: Date | null | undefined): string | null => d != null ? d.toISOString() : null
      const skipped = row?.last_counts?.skipped_windows ?? 0
      const status: ReconciliationStateBody['status'] = instance === null
        ? 'disabled'
        : instance.running || (row?.lease_until != null && row.lease_until > new Date())
          ? 'running'
          : row?.last_error != null ? 'failing' : skipped > 0 ? 'blocked' : 'idle'
      return {
        status,
        ...(disabled !== null ? { reason: disabled } : skipped > 0 ? { reason: `${skipped} window(s) skipped in the last run: LiteLLM's Lago callback delivered calls then (see README)` } : {}),
        cursor: iso(row?.cursor),
        last_run_at: iso(row?.last_run_at),
        last_success_at: iso(row?.last_success_at),
        last_error: row?.last_error ?? null,
        last_counts: row?.last_counts ?? null
      }
    }
  })

  if (instance === null || client === null) return
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const tick = (): void => {
    void run().catch((err: unknown) => { log.error({ err }, 'reconciliation pass crashed') }).finally(() => {
      if (!stopped) timer = setTimeout(tick, config.LITELLM_RECONCILE_INTERVAL_MS).unref()
    })
  }
  fastify.addHook('onReady', async () => { timer = setTimeout(tick, 1000).unref() })
  fastify.addHook('onClose', async () => {
    stopped = true
    clearTimeout(timer)
    if (instance.running) await instance.run().catch(() => {})
    await client.close()
  })
}, { name: 'reconciler', dependencies: ['config', 'db', 'litellm', 'metrics'] })
