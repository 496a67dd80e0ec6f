import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { IdentityKind, UsageEventSource } from '../../../db/database.js'
import type { HoldReason } from '../usage-events/normalize.js'
import type { WriteOutcome } from '../usage-events/repository.js'
import { callFingerprint, toUsageEvent, type LiteLLMCall } from './calls.js'
import { isObject, text } from './fields.js'
import { readSpendAlert, recordSpendAlert } from './spend-alert.js'
import { customerPolicy, resolveCustomer, type CallIdentity, type CustomerResolution, type Identities } from './identities.js'
import {
  assignCustomers, deleteMapping, getMapping, listMappings, loadMappings, mappingsVersion, parkedCalls, upsertMapping,
  type CustomerAssignment, type CustomerMappingRow, type MappingQuery
} from './mapping-repository.js'

/** What became of a stored call, and whether it was held back from Lago (failed, or no customer yet). */
export type StoredCall = WriteOutcome & { held?: HoldReason['kind'] }
export type StoreCalls = (calls: LiteLLMCall[], source: UsageEventSource) => Promise<StoredCall[]>

export interface LiteLLMIngestion {
  /** Stores calls read from one of LiteLLM's formats, customers resolved now; one outcome per call, in order. */
  store: StoreCalls
  mappings: {
    list: (q: MappingQuery) => Promise<{ rows: CustomerMappingRow[], total: number }>
    /** One mapping, without counting the table. */
    get: (identity: IdentityKind, value: string) => Promise<CustomerMappingRow | undefined>
    /** Creates or replaces a mapping, then gives waiting calls of that identity their customer. */
    put: (identity: IdentityKind, value: string, customerId: string) => Promise<{ row: CustomerMappingRow, created: boolean, released: number }>
    remove: (identity: IdentityKind, value: string) => Promise<boolean>
  }
  /** Records a LiteLLM alerting webhook event: spend_tracked goes to the spend ledger, the others are only counted. */
  recordAlert: (body: unknown, rawBody: string) => Promise<{ status: 'recorded' | 'ignored', reason?: string }>
}

declare module 'fastify' {
  interface FastifyInstance {
    litellm: LiteLLMIngestion
  }
}

const key = (kind: IdentityKind, value: string): string => `${kind}\u0000${value}`
const PARKED_PAGE = 500

export default fp(async function litellm (fastify) {
  const { config, db, log, metrics, usageEvents } = fastify
  const policy = customerPolicy(config)
  const alerts = new Counter({
    name: 'litellm_alerts_total',
    help: 'LiteLLM alerting webhook events by type; spend_tracked ones are recorded in the spend ledger',
    labelNames: ['event', 'outcome'] as const,
    registers: [metrics.registry]
  })

  // The mapping table is small and read on every call: each instance keeps a copy, reloaded when it changes.
  let mappings = new Map<string, string>()
  let version = ''
  const reload = async (): Promise<boolean> => {
    const current = await mappingsVersion(db)
    if (current === version) return false
    const rows = await loadMappings(db)
    mappings = new Map(rows.map((r) => [key(r.identity, r.value), r.customer_external_id]))
    version = current
    return true
  }
  const lookup = (kind: IdentityKind, value: string): string | undefined => mappings.get(key(kind, value))
  /** The Lago customer of a call under the current configuration and mappings. */
  const resolve = (identity: CallIdentity): CustomerResolution => resolveCustomer(identity, policy, lookup)

  // Gives stored calls that name no customer one where a mapping or the default now names it; returns how many
  // were queued. One pass at a time: a second request while one runs waits for it and then runs again (it may see more).
  let parkedRun: Promise<number> = Promise.resolve(0)
  const resolveParked = async (): Promise<number> => {
    parkedRun = parkedRun.catch(() => 0).then(async () => {
      let released = 0
      let after = 0
      for (;;) {
        const page = await parkedCalls(db, after, PARKED_PAGE)
        if (page.length === 0) break
        after = page[page.length - 1].id
        const assignments: CustomerAssignment[] = []
        for (const row of page) {
          const m = row.metadata
          const identity: CallIdentity = typeof m.identities === 'object' && m.identities !== null
            ? { identities: m.identities as Identities }
            : { subject: typeof m.subject === 'string' ? m.subject : undefined }
          const r = resolve(identity)
          if ('customer' in r) {
            assignments.push({
              id: row.id,
              customer: r.customer,
              via: r.via,
              fingerprint: callFingerprint(r.customer, { tokensInput: row.tokens_input, tokensOutput: row.tokens_output, totalTokens: row.total_tokens, costUsd: row.cost_usd })
            })
          }
        }
        released += await assignCustomers(db, assignments)
      }
      if (released > 0) {
        log.info({ released }, 'calls waiting for a customer now have one: queued for Lago')
        usageEvents.signals.emit('committed', released)
      }
      return released
    })
    return await parkedRun
  }

  await reload()

  fastify.decorate('litellm', {
    async store (calls, source) {
      if (calls.length === 0) return []
      const events = calls.map((call) => toUsageEvent(call, source, resolve(call.identity)))
      const outcomes = await usageEvents.ingest(events)
      return outcomes.map((o, i) => events[i].hold !== undefined ? { ...o, held: events[i].hold?.kind } : o)
    },
    mappings: {
      list: async (q) => await listMappings(db, q),
      get: async (identity, value) => await getMapping(db, identity, value),
      async put (identity, value, customerId) {
        const { row, created } = await upsertMapping(db, identity, value, customerId)
        await reload()
        return { row, created, released: await resolveParked() }
      },
      async remove (identity, value) {
        const removed = await deleteMapping(db, identity, value)
        await reload()
        return removed
      }
    },
    async recordAlert (body, rawBody) {
      const read = readSpendAlert(body)
      const event = isObject(body) ? text(body.event, 64) ?? 'unknown' : 'unknown'
      if ('ignored' in read) {
        alerts.inc({ event, outcome: 'ignored' })
        return { status: 'ignored', reason: read.ignored }
      }
      await recordSpendAlert(db, read.alert, rawBody)
      alerts.inc({ event, outcome: 'recorded' })
      return { status: 'recorded' }
    }
  })

  // Mappings made through another instance, and a default customer set since calls were parked.
  let timer: NodeJS.Timeout | undefined
  const refresh = async (): Promise<void> => {
    try {
      if (await reload()) await resolveParked()
    } catch (err) {
      log.warn({ err }, 'could not refresh the customer mappings; the previous ones stay in use')
    }
  }
  fastify.addHook('onReady', async () => {
    await resolveParked().catch((err: unknown) => { log.warn({ err }, 'could not re-resolve calls waiting for a customer') })
    timer = setInterval(() => { void refresh() }, config.LITELLM_MAPPING_REFRESH_MS)
    timer.unref()
  })
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    await parkedRun.catch(() => 0)
  })
}, { name: 'litellm', dependencies: ['config', 'db', 'metrics', 'usage-events'] })
