import type { UsageEvent } from './normalize.js'
import type { WriteOutcome } from './repository.js'

export interface UsageEventWriterOptions {
  /** Stores events in one statement (one commit) and returns one outcome per event, in order. */
  write: (events: UsageEvent[]) => Promise<WriteOutcome[]>
  maxBatchRows: number
  maxConcurrentWrites: number
  /** Extra wait before a write to gather more events; 0 groups only what arrives while writes are in flight. */
  lingerMs: number
  /** Called after each commit with the number of new events (wakes the forwarder). */
  onCommitted?: (accepted: number) => void
}

interface Waiting {
  event: UsageEvent
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

  /** Resolves with one outcome per event once they are committed; rejects if the write failed. */
  submit (events: UsageEvent[]): Promise<WriteOutcome[]> {
    if (this.#closed) return Promise.reject(new WriterClosedError())
    const promises = events.map((event) => new Promise<WriteOutcome>((resolve, reject) => {
      this.#queue.push({ event, resolve, reject })
    }))
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
    this.#opts.write(batch.map((w) => w.event)).then((outcomes) => {
      let accepted = 0
      for (const [i, w] of batch.entries()) {
        if (outcomes[i].status === 'accepted') accepted++
        w.resolve(outcomes[i])
      }
      if (accepted > 0) {
        try { this.#opts.onCommitted?.(accepted) } catch { /* a listener's failure must not fail the write */ }
      }
    }, (err: unknown) => {
      for (const w of batch) w.reject(err)
    }).finally(() => {
      this.#inFlight--
      this.#schedule()
      if (this.#queue.length === 0 && this.#inFlight === 0) for (const done of this.#drained.splice(0)) done()
    })
  }
}
