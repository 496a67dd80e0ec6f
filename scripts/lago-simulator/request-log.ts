/** One request the simulator received, for assertions. */
export interface LoggedRequest {
  /** Position since start (or the last reset): stable across `since` queries. */
  seq: number
  at: string
  method: string
  /** The URL path and query as received. */
  path: string
  /** The route pattern (/api/v1/customers/:external_id), or null for unmatched URLs. */
  route: string | null
  /** The status sent; 'dropped' when the simulator destroyed the connection without an answer; 'aborted' when the
   * client closed it first (the request is still processed). */
  status: number | 'dropped' | 'aborted'
  bodyBytes: number
  /** Events in the request body (POST /events: 1, /events/batch: the array's length). */
  eventCount: number
  /** The events as received, as JSON text (only with the recordEventBodies option). */
  events?: string[]
  /** The injected fault, if any. */
  fault: string | null
  /** Whether the request's data was stored (a 200, or a store-then-drop/stall). */
  stored: boolean
  durationMs: number
}

/** A bounded log: the oldest entries go first once `limit` is reached. */
export class RequestLog {
  private list: LoggedRequest[] = []
  private seq = 0
  /** Transaction ids of events whose request reached the handler, before any delay or answer (only with
   * recordEventBodies): a test can wait until a client's batch is surely in the simulator's hands. */
  readonly received = new Set<string>()

  constructor (private readonly limit = 100_000) {}

  push (entry: Omit<LoggedRequest, 'seq'>): void {
    this.list.push({ seq: this.seq++, ...entry })
    if (this.list.length > this.limit) this.list.splice(0, this.list.length - this.limit)
  }

  /** Entries, optionally only those after `since` (a seq) or matching a filter. */
  entries (filter: { since?: number, route?: string, method?: string } = {}): LoggedRequest[] {
    return this.list.filter((e) => (filter.since === undefined || e.seq > filter.since) &&
      (filter.route === undefined || e.route === filter.route || e.path.split('?')[0] === filter.route) &&
      (filter.method === undefined || e.method === filter.method))
  }

  get total (): number {
    return this.seq
  }

  clear (): void {
    this.list = []
    this.seq = 0
    this.received.clear()
  }
}
