import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../../../db/database.js'
import type { LiteLLMCall } from '../litellm/calls.js'
import type { StoreCalls } from '../litellm/index.js'
import { readSpendLog } from '../litellm/spend-log.js'
import { acquireLease, advanceCursor, finishRun, lagoCallbackEventsFor } from './repository.js'

/** What the reconciler reads from LiteLLM. */
export interface SpendLogsSource {
  window: (from: number, to: number, onPage: (rows: unknown[]) => Promise<void>) => Promise<number>
}

export interface ReconcilerOptions {
  db: Kysely<Database>
  /** The organization whose LiteLLM this is: its cursor and lease; its calls are stored under it (default: routed). */
  organizationId: string
  source: SpendLogsSource
  store: StoreCalls
  log: FastifyBaseLogger
  /** Reconcile only calls that started at least this long ago. */
  lagMs: number
  /** Where the first run starts, back from now. */
  lookbackMs: number
  /** Size of one window (one cursor step). */
  windowMs: number
  /** Windows per run at most (the next run continues). */
  maxWindowsPerRun: number
  leaseMs: number
  now?: () => number
}

export const RECONCILIATION_NAME = 'spend_logs'

export type RunCounts = Record<'windows' | 'rows' | 'stored' | 'duplicate' | 'conflict' | 'rejected' | 'skipped_windows', number>

export type RunReport =
  | { status: 'done', counts: RunCounts, cursor: Date }
  | { status: 'busy' }
  | { status: 'failed', counts: RunCounts, error: string }

const zero = (): RunCounts => ({ windows: 0, rows: 0, stored: 0, duplicate: 0, conflict: 0, rejected: 0, skipped_windows: 0 })

/**
 * Pulls LiteLLM's spend logs window by window, from a stored cursor up to (now - lag), and stores every call this
 * service does not have yet: a call already pushed (generic_api, OpenMeter) is recognised by its LiteLLM id and
 * counted as a duplicate, so a push and a pull of one call are one usage event. The cursor moves only after a
 * window is fully stored, so a failure resumes where it stopped. One replica reconciles at a time (a lease).
 */
export class Reconciler {
  readonly owner = `${process.pid}-${randomUUID().slice(0, 8)}`
  readonly #o: ReconcilerOptions
  #running: Promise<RunReport> | null = null

  constructor (options: ReconcilerOptions) {
    this.#o = options
  }

  get running (): boolean { return this.#running !== null }

  /** One pass; concurrent calls share the pass in progress. */
  async run (): Promise<RunReport> {
    this.#running ??= this.#run().finally(() => { this.#running = null })
    return await this.#running
  }

  async #run (): Promise<RunReport> {
    const { db, log } = this.#o
    const now = (this.#o.now ?? Date.now)()
    const { organizationId } = this.#o
    const lease = await acquireLease(db, organizationId, RECONCILIATION_NAME, this.owner, this.#o.leaseMs)
    if (lease === null) return { status: 'busy' }
    const counts = zero()
    const horizon = floorSecond(now - this.#o.lagMs)
    let cursor = lease.cursor?.getTime() ?? floorSecond(now - this.#o.lookbackMs)
    try {
      while (cursor < horizon && counts.windows < this.#o.maxWindowsPerRun) {
        const end = Math.min(horizon, floorSecond(cursor + this.#o.windowMs))
        if (await lagoCallbackEventsFor(db, new Date(cursor), new Date(end), Math.max(this.#o.lagMs, 60_000), organizationId)) {
          // Trust the Lago callback for this period rather than bill its calls twice.
          counts.skipped_windows++
          log.warn({ from: new Date(cursor), to: new Date(end) }, 'reconciliation skips a window: LiteLLM\'s Lago callback delivered calls then, and its events cannot be matched with spend logs')
        } else {
          counts.rows += await this.#o.source.window(cursor, end, async (rows) => { await this.#ingest(rows, counts) })
        }
        counts.windows++
        cursor = end
        if (!await advanceCursor(db, organizationId, RECONCILIATION_NAME, this.owner, new Date(cursor), this.#o.leaseMs)) {
          throw new Error('the reconciliation lease was taken over by another instance')
        }
      }
      await finishRun(db, organizationId, RECONCILIATION_NAME, this.owner, { error: null, counts })
      if (counts.stored > 0) log.info({ counts }, 'reconciliation stored calls LiteLLM did not push')
      return { status: 'done', counts, cursor: new Date(cursor) }
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      log.warn({ err, counts }, 'reconciliation with LiteLLM\'s spend logs failed; the next run resumes where this one stopped')
      await finishRun(db, organizationId, RECONCILIATION_NAME, this.owner, { error, counts }).catch(() => {})
      return { status: 'failed', counts, error }
    }
  }

  async #ingest (rows: unknown[], counts: RunCounts): Promise<void> {
    const calls: LiteLLMCall[] = []
    for (const row of rows) {
      const read = readSpendLog(row)
      if ('call' in read) calls.push(read.call)
      else counts.rejected++
    }
    const outcomes = await this.#o.store(calls, 'spend_logs', this.#o.organizationId)
    for (const o of outcomes) counts[o.status === 'accepted' ? 'stored' : o.status]++
  }
}

const floorSecond = (ms: number): number => Math.floor(ms / 1000) * 1000
