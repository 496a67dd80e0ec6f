import type { FastifyBaseLogger } from 'fastify'

export interface DatabaseAvailabilityOptions {
  log: Pick<FastifyBaseLogger, 'warn' | 'info'>
  /** While PostgreSQL is down: one summary line per interval. */
  summaryIntervalMs?: number
  now?: () => number
}

interface Outage {
  since: number
  /** Totals since the outage began. */
  failures: number
  refused: number
  /** Since the last summary line. */
  failuresNow: number
  refusedNow: number
}

export interface DatabaseAvailabilityState {
  status: 'up' | 'down'
  /** Since when PostgreSQL has been failing (ISO), while down. */
  since?: string
  refused?: number
}

/**
 * Logs a PostgreSQL outage as an operator wants to read it: one line when it starts, one summary per interval
 * (requests refused with 503, failed statements and connection attempts) while it lasts, one when it ends, instead
 * of a line per refused request (thousands a second under load). Fed by the connection layer (failures and
 * successful statements) and by the error handlers (refused requests).
 */
export class DatabaseAvailability {
  readonly #log: DatabaseAvailabilityOptions['log']
  readonly #intervalMs: number
  readonly #now: () => number
  #outage: Outage | null = null
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor (options: DatabaseAvailabilityOptions) {
    this.#log = options.log
    this.#intervalMs = options.summaryIntervalMs ?? 10_000
    this.#now = options.now ?? Date.now
  }

  /**
   * A statement, a connection attempt or a pooled connection failed because PostgreSQL is unreachable. Not after
   * close: the service is shutting down, and stopping its embedded server can end a pooled connection (57P01)
   * before the pool's own goodbye reaches it, which is no outage to report.
   */
  failed (err: unknown): void {
    if (this.#closed) return
    this.#begin(err).failuresNow++
  }

  /** A request was answered 503 because PostgreSQL is unreachable. */
  refused (err: unknown): void {
    this.#begin(err).refusedNow++
  }

  /**
   * A statement sent at `sentAt` succeeded: PostgreSQL answers again. One sent before the outage began (its answer
   * processed after the first failures) says nothing of recovery.
   */
  answered (sentAt: number = this.#now()): void {
    const outage = this.#outage
    if (outage === null || sentAt < outage.since) return
    this.#tally(outage)
    this.#outage = null
    clearInterval(this.#timer)
    this.#log.info({ down_ms: this.#now() - outage.since, refused_requests: outage.refused, failed_statements: outage.failures },
      `PostgreSQL answers again after ${Math.round((this.#now() - outage.since) / 1000)} s; ${outage.refused} request(s) were refused with 503 meanwhile`)
  }

  state (): DatabaseAvailabilityState {
    const outage = this.#outage
    if (outage === null) return { status: 'up' }
    return { status: 'down', since: new Date(outage.since).toISOString(), refused: outage.refused + outage.refusedNow }
  }

  close (): void {
    this.#closed = true
    clearInterval(this.#timer)
  }

  #begin (err: unknown): Outage {
    if (this.#outage !== null) return this.#outage
    const outage: Outage = { since: this.#now(), failures: 0, refused: 0, failuresNow: 0, refusedNow: 0 }
    this.#outage = outage
    this.#log.warn({ err }, 'PostgreSQL is unavailable: requests that need it get 503 with Retry-After, connections are reopened on demand; ' +
      `further failures are summed up every ${Math.round(this.#intervalMs / 1000)} s instead of logged one by one`)
    this.#timer = setInterval(() => { this.#summary() }, this.#intervalMs).unref()
    return outage
  }

  #tally (outage: Outage): { failures: number, refused: number } {
    const now = { failures: outage.failuresNow, refused: outage.refusedNow }
    outage.failures += outage.failuresNow
    outage.refused += outage.refusedNow
    outage.failuresNow = 0
    outage.refusedNow = 0
    return now
  }

  #summary (): void {
    const outage = this.#outage
    if (outage === null) return
    const { failures, refused } = this.#tally(outage)
    this.#log.warn({ down_ms: this.#now() - outage.since, refused_requests: refused, failed_statements: failures },
      `PostgreSQL still unavailable: ${refused} request(s) refused with 503 and ${failures} statement(s) or connection(s) failed in the last ${Math.round(this.#intervalMs / 1000)} s`)
  }
}
