import { databaseUnavailable } from '../../../db/errors.js'
import type { UsageEvent } from './normalize.js'
import type { WriteOutcome } from './repository.js'

export interface UsageEventWriterOptions {
  /** Stores events in one statement (one commit) and returns one outcome per event, in order. */
  write: (events: UsageEvent[]) => Promise<WriteOutcome[]>
  maxBatchRows: number
  maxConcurrentWrites: number
  /** Extra wait before a write to gather more events; 0 groups only what arrives while writes are in flight. */
  lingerMs: number
  /**
   * Called after each commit with the number of new events and how long the write's events waited on average since
   * submitted (wakes the forwarder, which yields to ingestion by it).
   */
  onCommitted?: (accepted: number, meanLatencyMs: number) => void
  /** Why an event cannot be stored (checked before it joins a write), or undefined. */
  check?: (event: UsageEvent) => { field: string, message: string } | undefined
  /** Told about each event a write refused for a data reason, once found by splitting the write. */
  onUnstorable?: (event: UsageEvent, err: unknown) => void
}

// SQLSTATE classes caused by the rows written, not by the database: data exception (22: bad encoding, NUL, out
// of range), integrity constraint violation (23: a CHECK), program limit exceeded (54: an index row too large).
const DATA_SQLSTATE = /^(22|23|54)/

/**
 * Whether a failed write failed because of what some of its rows hold, so that the same rows written in smaller
 * groups would fail alone: PostgreSQL's data errors, and a RangeError raised while turning a row into SQL
 * parameters (an invalid Date). An unavailable database never is: retrying row by row would only
 * multiply the failures, and every request of the write gets the 503.
 */
export function isDataError (err: unknown): boolean {
  if (databaseUnavailable(err)) return false
  if (typeof err !== 'object' || err === null) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return DATA_SQLSTATE.test(code)
  // A RangeError is a value JS cannot write (an invalid Date); other errors without a SQLSTATE are bugs: a 500.
  return err instanceof RangeError
}

/** The outcome of an event PostgreSQL refused: what is said to its request (a 4xx, never a 500). */
function unstorable (err: unknown): WriteOutcome {
  const { code, message } = err as { code?: unknown, message?: unknown }
  const why = typeof message === 'string' ? message.slice(0, 200) : 'refused'
  return { status: 'rejected', field: '/', message: `cannot be stored: ${why}${typeof code === 'string' ? ` (SQLSTATE ${code})` : ''}` }
}

interface Waiting {
  event: UsageEvent
  /** performance.now() when submitted. */
  at: number
  resolve: (outcome: WriteOutcome) => void
  reject: (err: unknown) => void
}

export class WriterClosedError extends Error {
  override readonly name = 'WriterClosedError'
  readonly code = 'shutting_down'
  readonly statusCode = 503
  constructor () { super('The service is shutting down and stores nothing more; retry against another instance') }
}

/**
 * Group commit: events from concurrent requests are written together, one multi-row insert per write, and each
 * request is answered only after the write holding its events has committed. Under light load a write holds one
 * request; under heavy load the queue grows while writes are in flight and the next write takes all of it.
 */
export class UsageEventWriter {
  readonly #opts: UsageEventWriterOptions
  #queue: Waiting[] = []
  #inFlight = 0
  #scheduled = false
  #closed = false
  #drained: Array<() => void> = []

  constructor (opts: UsageEventWriterOptions) {
    this.#opts = opts
  }

  /**
   * Resolves with one outcome per event once they are committed; rejects if the write failed for a reason other
   * than the events themselves (the database unavailable). An event that cannot be stored is answered 'rejected'
   * without failing the others: refused before the write by `check`, or found by splitting a write that failed.
   */
  submit (events: UsageEvent[]): Promise<WriteOutcome[]> {
    if (this.#closed) return Promise.reject(new WriterClosedError())
    const at = performance.now()
    const promises = events.map((event) => {
      const problem = this.#opts.check?.(event)
      if (problem !== undefined) return Promise.resolve<WriteOutcome>({ status: 'rejected', ...problem })
      return new Promise<WriteOutcome>((resolve, reject) => {
        this.#queue.push({ event, at, resolve, reject })
      })
    })
    this.#schedule()
    return Promise.all(promises)
  }

  /** Events waiting for a write, and writes in flight. */
  get backlog (): { queued: number, writing: number } {
    return { queued: this.#queue.length, writing: this.#inFlight }
  }

  /** Refuses new events and resolves once every accepted one is committed or failed. */
  async close (): Promise<void> {
    this.#closed = true
    if (this.#queue.length === 0 && this.#inFlight === 0) return
    await new Promise<void>((resolve) => this.#drained.push(resolve))
  }

  #schedule (): void {
    if (this.#scheduled || this.#queue.length === 0 || this.#inFlight >= this.#opts.maxConcurrentWrites) return
    this.#scheduled = true
    // setImmediate lets the requests parsed in the same turn of the event loop join this write.
    if (this.#opts.lingerMs > 0) setTimeout(() => this.#flush(), this.#opts.lingerMs)
    else setImmediate(() => this.#flush())
  }

  #flush (): void {
    this.#scheduled = false
    if (this.#queue.length === 0 || this.#inFlight >= this.#opts.maxConcurrentWrites) return
    const batch = this.#queue.splice(0, this.#opts.maxBatchRows)
    this.#inFlight++
    this.#schedule()
    this.#write(batch).finally(() => {
      this.#inFlight--
      this.#schedule()
      if (this.#queue.length === 0 && this.#inFlight === 0) for (const done of this.#drained.splice(0)) done()
    })
  }

  /**
   * Writes a group and answers its events. When the write fails for a data reason, the group is split in two and
   * each half written on its own (in order, so that a request_id repeated across halves is judged as before),
   * down to single events: only the rows that cannot be stored fail, the others are answered as if alone.
   */
  async #write (batch: Waiting[]): Promise<void> {
    let outcomes: WriteOutcome[]
    try {
      outcomes = await this.#opts.write(batch.map((w) => w.event))
    } catch (err) {
      if (!isDataError(err)) {
        for (const w of batch) w.reject(err)
        return
      }
      if (batch.length === 1) {
        try { this.#opts.onUnstorable?.(batch[0].event, err) } catch { /* reporting must not fail the answer */ }
        batch[0].resolve(unstorable(err))
        return
      }
      const half = Math.ceil(batch.length / 2)
      await this.#write(batch.slice(0, half))
      await this.#write(batch.slice(half))
      return
    }
    let accepted = 0
    let waitedMs = 0
    const now = performance.now()
    for (const [i, w] of batch.entries()) {
      if (outcomes[i].status === 'accepted') accepted++
      waitedMs += now - w.at
      w.resolve(outcomes[i])
    }
    if (accepted > 0) {
      try { this.#opts.onCommitted?.(accepted, waitedMs / batch.length) } catch { /* a listener's failure must not fail the write */ }
    }
  }
}
