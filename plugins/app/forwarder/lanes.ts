import { retryDelay, type BackoffPolicy } from './backoff.js'

/** Why an organization's forwarding is paused. */
export type PauseReason = 'lago_unavailable' | 'rate_limited' | 'unauthorized'

export type LaneStatus = 'running' | PauseReason

/** What /health and /webhooks/stats show for one organization's forwarding. */
export interface LaneState {
  status: LaneStatus
  /** Since when it is in this status (ISO 8601). */
  since: string
  /** While paused: when the next probe of its Lago goes out. */
  next_probe_at: string | null
  last_error: string | null
}

/**
 * A worker's next move: claim a batch of this organization (`wakes` is handed back to idle()), probe its Lago, or
 * wait (nothing to do for now).
 */
export type Turn = { organization: string, kind: 'claim', wakes: number } | { organization: string, kind: 'probe' } | { waitMs: number }

interface Pause { reason: PauseReason, until: number, failures: number }

interface Lane {
  pause: Pause | null
  /** A probe of this organization's Lago is in flight (one at a time, whoever started it). */
  probing: boolean
  /** Its last claim found nothing: not looked at again before this, unless woken. */
  idleUntil: number
  /** Wakes so far: an empty claim that started before a wake does not put the organization to sleep. */
  wakes: number
  since: number
  lastError: string | null
}

/**
 * The forwarder's per-organization state and its round-robin scheduler, with no I/O (the clock is injected):
 * - each organization has its own pause (Lago down, rate limited, key refused) and its own probe, so one
 *   organization's trouble never stops another;
 * - workers take organizations in turn, one batch each: an organization with a huge backlog gets one batch per
 *   turn like any other, so another organization's new events wait at most one batch per worker;
 * - an organization whose last claim was empty is skipped until woken (a new event) or its idle time passes, so
 *   idle organizations cost no queries.
 */
export class OrganizationLanes {
  readonly #lanes = new Map<string, Lane>()
  #order: string[] = []
  #cursor = 0

  constructor (
    private readonly probe: BackoffPolicy,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random
  ) {}

  /** The organizations to forward for (active ones): new ones get a lane, gone ones (disabled, deleted) lose theirs. */
  setOrganizations (ids: readonly string[]): void {
    const wanted = [...new Set(ids)]
    for (const id of wanted) {
      if (!this.#lanes.has(id)) this.#lanes.set(id, { pause: null, probing: false, idleUntil: 0, wakes: 0, since: this.now(), lastError: null })
    }
    for (const id of this.#lanes.keys()) if (!wanted.includes(id)) this.#lanes.delete(id)
    this.#order = wanted
    if (this.#cursor >= this.#order.length) this.#cursor = 0
  }

  get organizations (): readonly string[] {
    return this.#order
  }

  /**
   * The next organization in turn that has something to do. A paused organization whose pause ended is probed
   * (by one worker; the others pass over it meanwhile); otherwise it is skipped until then.
   */
  next (idleWaitMs: number): Turn {
    const now = this.now()
    let wakeAt = now + idleWaitMs
    for (let i = 0; i < this.#order.length; i++) {
      const index = (this.#cursor + i) % this.#order.length
      const id = this.#order[index]
      const lane = this.#lanes.get(id) as Lane
      if (lane.pause !== null) {
        if (lane.probing) continue
        if (lane.pause.until > now) {
          wakeAt = Math.min(wakeAt, lane.pause.until)
          continue
        }
        lane.probing = true
        this.#cursor = (index + 1) % this.#order.length
        return { organization: id, kind: 'probe' }
      }
      if (lane.idleUntil > now) {
        wakeAt = Math.min(wakeAt, lane.idleUntil)
        continue
      }
      this.#cursor = (index + 1) % this.#order.length
      return { organization: id, kind: 'claim', wakes: lane.wakes }
    }
    return { waitMs: Math.max(0, wakeAt - now) }
  }

  /**
   * Its claim (taken at the turn that gave `wakes`) found nothing due. Ignored when a wake came since: the events
   * that wake announced may have been committed after the claim looked.
   */
  idle (id: string, ms: number, wakes: number): void {
    const lane = this.#lanes.get(id)
    if (lane !== undefined && lane.wakes === wakes) lane.idleUntil = this.now() + ms
  }

  /** New events (of this organization, or of any when unknown): look again at once. */
  wake (id?: string): void {
    for (const [key, lane] of this.#lanes) {
      if (id !== undefined && key !== id) continue
      lane.idleUntil = 0
      lane.wakes++
    }
  }

  isPaused (id: string): boolean {
    return this.#lanes.get(id)?.pause != null
  }

  /** How long the organization's pause still lasts (0 when not paused). */
  pauseRemaining (id: string): number {
    const pause = this.#lanes.get(id)?.pause
    return pause == null ? 0 : Math.max(0, pause.until - this.now())
  }

  /**
   * Pauses the organization: until Retry-After when its Lago gave one, else a jittered backoff that grows with
   * the failed probes. Returns whether this started the pause or changed its reason (worth a log line).
   */
  pause (id: string, reason: PauseReason, error: string, retryAfterMs: number | null): boolean {
    const lane = this.#lanes.get(id)
    if (lane === undefined) return false
    const failures = (lane.pause?.failures ?? 0) + 1
    const delay = Math.max(this.probe.baseMs, retryDelay(failures, this.probe, retryAfterMs, this.random))
    const changed = lane.pause?.reason !== reason
    if (changed) lane.since = this.now()
    lane.pause = { reason, until: this.now() + delay, failures }
    lane.probing = false
    lane.lastError = error
    return changed
  }

  /** Its Lago answers again (or its key was changed): forwarding resumes. Returns whether it was paused. */
  resume (id: string): boolean {
    const lane = this.#lanes.get(id)
    if (lane === undefined) return false
    const was = lane.pause !== null
    lane.probing = false
    lane.idleUntil = 0
    if (!was) return false
    lane.pause = null
    lane.since = this.now()
    return true
  }

  /** A probe ended without deciding (e.g. PostgreSQL trouble): another worker may probe again. */
  probeAbandoned (id: string): void {
    const lane = this.#lanes.get(id)
    if (lane !== undefined) lane.probing = false
  }

  /** An error worth showing that did not pause the organization (a batch that failed while its Lago answered). */
  noteError (id: string, error: string): void {
    const lane = this.#lanes.get(id)
    if (lane !== undefined) lane.lastError = error
  }

  state (id: string): LaneState | null {
    const lane = this.#lanes.get(id)
    if (lane === undefined) return null
    return {
      status: lane.pause?.reason ?? 'running',
      since: new Date(lane.since).toISOString(),
      next_probe_at: lane.pause !== null ? new Date(lane.pause.until).toISOString() : null,
      last_error: lane.lastError
    }
  }
}
