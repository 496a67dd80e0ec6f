import type { FieldErrors } from './errors.js'

/** What the simulator does to one request instead of (or around) answering it normally. */
export type Fault =
  /** Answer this status without processing. Default bodies: Lago's crash JSON for 500, a proxy's HTML page otherwise. */
  | { type: 'status', status: number, body?: unknown, headers?: Record<string, string> }
  /** 429 without processing, with Retry-After in seconds (or as an HTTP date) and x-ratelimit-* headers. */
  | { type: 'rate_limit', retryAfterSeconds?: number, retryAfterAsDate?: boolean, omitRetryAfter?: boolean, limit?: number, resetSeconds?: number }
  /** Wait, then process and answer normally (a slow Lago processes the request even if the client gave up). */
  | { type: 'delay', ms: number }
  /** Destroy the connection without processing or answering. */
  | { type: 'drop' }
  /** Process (store) the request, then destroy the connection: the reply is lost but Lago has the data. */
  | { type: 'store_then_drop' }
  /** Process (store) the request, then hold the reply for `ms` (past the client's timeout) before sending it. */
  | { type: 'store_then_stall', ms: number }

export interface FaultScope {
  /** "POST /api/v1/events/batch" (method and route pattern) or "/api/v1/customers/:external_id" (any method). Default: every API route. */
  route?: string
  /** How many matching requests it affects. Default 1 (use Infinity for "until cleared"). */
  times?: number
  /** Chance that a matching request is affected (the rule is consumed only when it is). Default 1. */
  probability?: number
}

/** Makes chosen events fail validation: the request's batch is refused (422, index-keyed) and nothing stored. */
export interface EventRejection {
  transactionIds?: string[]
  /** Events whose properties have all these values. */
  properties?: Record<string, string | number>
  /** In-process only. */
  match?: (event: Record<string, unknown>) => boolean
  /** The errors reported for a matching event. Default {"code": ["value_is_invalid"]}. */
  errors?: FieldErrors
  route?: string
  /** How many requests it may reject. Default: until cleared. */
  times?: number
}

export type OutageMode = '503' | 'drop' | 'refuse'

/** Seeded random faults for chaos tests: on each matching request one draw picks at most one fault. */
export interface ChaosConfig {
  seed: number
  route?: string
  /** Probability of each fault per request (their sum must be at most 1). */
  probabilities: Partial<Record<'status500' | 'status502' | 'status503' | 'rateLimit' | 'delay' | 'drop' | 'storeThenDrop' | 'storeThenStall', number>>
  /** Per-event probability that an event is permanently invalid (decided by transaction_id, so every retry agrees). */
  rejectEventProbability?: number
  delayMs?: number
  stallMs?: number
  retryAfterSeconds?: number
  /**
   * At most this many failing faults (all but delay and rate limit) on the sends that carry a given event
   * (by transaction_id): a send carrying an event that has met as many goes through. Bounds how many sends any
   * event needs whatever the timing, so a test can set the client's retry budget from it.
   */
  maxFaultsPerEvent?: number
}

interface Rule { id: number, fault: Fault, route?: string, remaining: number, probability: number }
interface Rejection { id: number, spec: EventRejection, remaining: number }

/** A small seeded PRNG (mulberry32): the same seed gives the same fault sequence. */
function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A stable number in [0, 1) for a text (FNV-1a), so chaos decisions about an event do not change on retry. */
function unitHash (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h / 4294967296
}

export const routeMatches = (scope: string | undefined, method: string, route: string): boolean =>
  scope === undefined || scope === route || scope === `${method} ${route}`

/** The fault plan a test (or the HTTP control API) sets up; the app asks it what to do with each request. */
export class FaultController {
  private rules: Rule[] = []
  private rejections: Rejection[] = []
  private nextId = 1
  private outageUntil = 0
  private outageMode: OutageMode = '503'
  private chaosConfig: (ChaosConfig & { random: () => number }) | null = null
  /** Failing chaos faults met by each transaction_id (for maxFaultsPerEvent). */
  private chaosFaultsMet = new Map<string, number>()
  /** How many times each fault type was applied (for assertions and the control API). */
  readonly applied: Record<string, number> = {}
  /** Set by the app: stops accepting connections for `ms` (refused connections). */
  refuseConnections: (ms: number) => void = () => {}

  add (fault: Fault, scope: FaultScope = {}): number {
    const id = this.nextId++
    this.rules.push({ id, fault, route: scope.route, remaining: scope.times ?? 1, probability: scope.probability ?? 1 })
    return id
  }

  /** The next `n` matching requests answer `status` (500, 502, 503…). */
  failNext (n: number, status = 500, scope: Omit<FaultScope, 'times'> = {}): number {
    return this.add({ type: 'status', status }, { ...scope, times: n })
  }

  rateLimitNext (n: number, options: Omit<Extract<Fault, { type: 'rate_limit' }>, 'type'> = {}, scope: Omit<FaultScope, 'times'> = {}): number {
    return this.add({ type: 'rate_limit', ...options }, { ...scope, times: n })
  }

  delayNext (n: number, ms: number, scope: Omit<FaultScope, 'times'> = {}): number {
    return this.add({ type: 'delay', ms }, { ...scope, times: n })
  }

  dropNext (n: number, scope: Omit<FaultScope, 'times'> = {}): number {
    return this.add({ type: 'drop' }, { ...scope, times: n })
  }

  storeThenDropNext (n: number, scope: Omit<FaultScope, 'times'> = {}): number {
    return this.add({ type: 'store_then_drop' }, { ...scope, times: n })
  }

  storeThenStallNext (n: number, ms: number, scope: Omit<FaultScope, 'times'> = {}): number {
    return this.add({ type: 'store_then_stall', ms }, { ...scope, times: n })
  }

  rejectEvents (spec: EventRejection): number {
    const id = this.nextId++
    this.rejections.push({ id, spec, remaining: spec.times ?? Infinity })
    return id
  }

  /** Every API call fails for `ms`: 503s, dropped connections, or refused connections (listener closed). */
  outage (ms: number, mode: OutageMode = '503'): void {
    this.outageUntil = Date.now() + ms
    this.outageMode = mode
    if (mode === 'refuse') this.refuseConnections(ms)
  }

  chaos (config: ChaosConfig | null): void {
    if (config === null) {
      this.chaosConfig = null
      return
    }
    const total = Object.values(config.probabilities).reduce((a, b) => a + (b ?? 0), 0)
    if (total > 1) throw new RangeError('chaos probabilities add up to more than 1')
    this.chaosConfig = { ...config, random: mulberry32(config.seed) }
    this.chaosFaultsMet.clear()
  }

  remove (id: number): boolean {
    const before = this.rules.length + this.rejections.length
    this.rules = this.rules.filter((r) => r.id !== id)
    this.rejections = this.rejections.filter((r) => r.id !== id)
    return this.rules.length + this.rejections.length < before
  }

  clear (): void {
    this.rules = []
    this.rejections = []
    this.outageUntil = 0
    this.chaosConfig = null
  }

  /** The plan as JSON: `remaining: null` means until cleared. */
  list (): { rules: Array<Omit<Rule, 'remaining'> & { remaining: number | null }>, rejections: Array<{ id: number, remaining: number | null, transactionIds?: string[], properties?: Record<string, string | number> }>, outageUntil: string | null, chaos: ChaosConfig | null } {
    const finite = (n: number): number | null => Number.isFinite(n) ? n : null
    const chaos = this.chaosConfig === null ? null : (({ random: _random, ...rest }) => rest)(this.chaosConfig)
    return {
      rules: this.rules.map((r) => ({ ...r, remaining: finite(r.remaining) })),
      rejections: this.rejections.map((r) => ({ id: r.id, remaining: finite(r.remaining), transactionIds: r.spec.transactionIds, properties: r.spec.properties })),
      outageUntil: this.outageUntil > Date.now() ? new Date(this.outageUntil).toISOString() : null,
      chaos
    }
  }

  private count (type: string): void {
    this.applied[type] = (this.applied[type] ?? 0) + 1
  }

  /** The fault for this request, if any (consumed); `transactionIds`: the events it carries, if any. */
  take (method: string, route: string, transactionIds: string[] = []): Fault | null {
    if (Date.now() < this.outageUntil) {
      this.count(`outage_${this.outageMode}`)
      // While refusing, connections that were already open get dropped.
      return this.outageMode === '503' ? { type: 'status', status: 503 } : { type: 'drop' }
    }
    for (const rule of this.rules) {
      if (rule.remaining <= 0 || !routeMatches(rule.route, method, route)) continue
      if (rule.probability < 1 && Math.random() >= rule.probability) continue
      rule.remaining--
      this.rules = this.rules.filter((r) => r.remaining > 0)
      this.count(rule.fault.type)
      return rule.fault
    }
    const chaos = this.chaosConfig
    if (chaos !== null && routeMatches(chaos.route, method, route)) {
      const p = chaos.probabilities
      const options: Array<[number | undefined, Fault]> = [
        [p.status500, { type: 'status', status: 500 }],
        [p.status502, { type: 'status', status: 502 }],
        [p.status503, { type: 'status', status: 503 }],
        [p.rateLimit, { type: 'rate_limit', retryAfterSeconds: chaos.retryAfterSeconds ?? 1 }],
        [p.delay, { type: 'delay', ms: chaos.delayMs ?? 50 }],
        [p.drop, { type: 'drop' }],
        [p.storeThenDrop, { type: 'store_then_drop' }],
        [p.storeThenStall, { type: 'store_then_stall', ms: chaos.stallMs ?? 2000 }]
      ]
      let draw = chaos.random()
      for (const [probability, fault] of options) {
        if (probability === undefined || probability <= 0) continue
        if (draw < probability) {
          if (fault.type !== 'delay' && fault.type !== 'rate_limit' && chaos.maxFaultsPerEvent !== undefined) {
            if (transactionIds.some((id) => (this.chaosFaultsMet.get(id) ?? 0) >= chaos.maxFaultsPerEvent!)) {
              this.count('chaos_spared')
              return null
            }
            for (const id of transactionIds) this.chaosFaultsMet.set(id, (this.chaosFaultsMet.get(id) ?? 0) + 1)
          }
          this.count(`chaos_${fault.type}`)
          return fault
        }
        draw -= probability
      }
    }
    return null
  }

  /** Per-event rejections that apply to this request, as the state's EventRejector; undefined when none. */
  rejector (method: string, route: string): ((event: Record<string, unknown>) => FieldErrors | null) | undefined {
    const active = this.rejections.filter((r) => r.remaining > 0 && routeMatches(r.spec.route, method, route))
    const chaos = this.chaosConfig
    const chaosP = chaos !== null && routeMatches(chaos.route, method, route) ? chaos.rejectEventProbability ?? 0 : 0
    if (active.length === 0 && chaosP === 0) return undefined
    const used = new Set<Rejection>()
    return (event) => {
      const txid = String(event.transaction_id)
      for (const r of active) {
        const { transactionIds, properties, match } = r.spec
        const props = (typeof event.properties === 'object' && event.properties !== null ? event.properties : {}) as Record<string, unknown>
        const hit = (transactionIds?.includes(txid) ?? false) ||
          (properties !== undefined && Object.entries(properties).every(([k, v]) => props[k] === v)) ||
          (match?.(event) ?? false)
        if (!hit) continue
        if (!used.has(r)) {
          used.add(r)
          r.remaining--
          this.count('reject_events')
        }
        return r.spec.errors ?? { code: ['value_is_invalid'] }
      }
      if (chaosP > 0 && chaos !== null && unitHash(`${chaos.seed}:${txid}`) < chaosP) {
        this.count('chaos_reject_event')
        return { code: ['value_is_invalid'] }
      }
      return null
    }
  }
}
