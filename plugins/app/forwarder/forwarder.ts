import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../../../db/database.js'
import type { CallOptions, LagoAttempt } from '../lago/client.js'
import { LagoApiError, classifyLagoError } from '../lago/errors.js'
import { databaseUnavailable } from '../../../db/errors.js'
import type { EventInputObject } from '../lago/types.js'
import { retryDelay, type BackoffPolicy } from './backoff.js'
import { OrganizationLanes, type PauseReason } from './lanes.js'
import {
  claimDueEvents, freezeBodies, markDead, markForwarded, markUnmapped, recordDeliveryAttempt, release,
  releaseAllClaimedBy, releasePausedNow, scheduleRetry, type ClaimedEvent, type DeliveryError
} from './repository.js'

/** What the forwarder needs from Lago: the batch endpoint and a cheap authenticated call to probe with. */
export interface LagoEventsApi {
  createBatchEvents: (events: EventInputObject[], options?: CallOptions) => Promise<unknown>
  getBillableMetric: (code: string, options?: CallOptions) => Promise<unknown>
}

/** Where the usage events of a set of an organization's customers go: their subscription, or why there is none yet. */
export type SubscriptionResolver = (organization: string, customerIds: string[]) => Promise<Map<string, { subscription: string } | { unmapped: string }>>

export type SettledOutcome = 'forwarded' | 'duplicate' | 'dead' | 'retry' | 'released'

export interface ForwarderOptions {
  db: Kysely<Database>
  /** The organizations to forward for: the active ones (a disabled organization's events wait). */
  organizations: () => Promise<string[]>
  /** Re-read the organizations at least this often (a 'changed' notification re-reads them at once). */
  organizationsRefreshMs?: number
  /** The organization's Lago client. */
  lagoFor: (organization: string) => Promise<LagoEventsApi>
  resolveSubscriptions: SubscriptionResolver
  log: FastifyBaseLogger
  /** The organization's billable metric code (frozen into each event's body). */
  metricCodeFor: (organization: string) => Promise<string>
  batchSize: number
  concurrency: number
  pollIntervalMs: number
  leaseMs: number
  maxAttempts: number
  retry: BackoffPolicy
  /** Backoff between probes while Lago is down or refuses the key. */
  probe: BackoffPolicy
  /** Called for every send's outcome (metrics). */
  onSettled?: (organization: string, outcome: SettledOutcome, count: number) => void
  /** Whether ingestion is writing now: then only `concurrencyWhileIngesting` workers forward. */
  ingestionWriting?: () => boolean
  /** How long to wait after a batch so as not to slow ingestion (0: go on). */
  ingestionPauseMs?: () => number
  concurrencyWhileIngesting?: number
}

export type ForwarderStatus = 'running' | PauseReason | 'stopped'

/** How often a worker held back while ingestion writes looks again. */
const INGESTION_CHECK_MS = 100

export interface ForwarderState {
  status: ForwarderStatus
  since: string
  /** While paused: when the next probe goes out. */
  next_probe_at: string | null
  last_error: string | null
}

/** What a batch is sent with: its organization, that organization's Lago client and metric code. */
interface Lane { organization: string, lago: LagoEventsApi, metricCode: string }

/** Batches one claim takes: one for the worker that claims, the rest for the next workers of the organization. */
const CLAIM_AHEAD = 4

/**
 * Sends stored usage events to Lago, batch by batch, each event exactly once in effect, each organization's
 * events to its own Lago organization:
 * - events are claimed with a lease (a row in usage_event_claims), so replicas never send the same event at once,
 *   and a dead replica's events are claimed again when the lease runs out; within a replica, one organization's
 *   claims are taken one at a time, so that each sees the one before it;
 * - an event's body is frozen at its first send, so a resend after a lost reply is byte-identical and Lago
 *   answers value_already_exist, which counts as delivered;
 * - organizations take turns, one batch each (OrganizationLanes): one organization's backlog delays another's
 *   new events by at most one batch per worker;
 * - an organization's Lago down (timeouts, refused connections, 5xx that a probe confirms), rate limiting or
 *   refusing its key pauses that organization only; one probe per interval decides when it resumes, no event's
 *   attempts are spent meanwhile, and the other organizations keep forwarding;
 * - an event Lago rejects (per-index 4xx in an atomic batch) is dead-lettered alone, the rest is resent.
 */
export class Forwarder {
  readonly worker = `${process.pid}-${randomUUID().slice(0, 8)}`
  readonly #o: ForwarderOptions
  readonly #lanes: OrganizationLanes
  #stopping = false
  #workers: Array<Promise<void>> = []
  #wakers = new Set<() => void>()
  #organizationsReadAt = Number.NEGATIVE_INFINITY
  #reading: Promise<void> | null = null
  /** Per organization, the last claim this replica started (claims of one organization run one after another). */
  #claiming = new Map<string, Promise<unknown>>()
  /** Per organization, batches claimed and not yet taken by a worker. */
  #claimedAhead = new Map<string, Array<{ batch: ClaimedEvent[], claimedAt: number }>>()
  /** Delivered batches whose settle is still being written (see #recordLater): at most `concurrency`. */
  #recording = new Set<Promise<void>>()
  /** Until when workers wait before their next batch, after a delivered batch could not be recorded. */
  #recordFailedUntil = 0

  constructor (options: ForwarderOptions) {
    this.#o = options
    this.#lanes = new OrganizationLanes(options.probe)
  }

  start (): void {
    if (this.#workers.length > 0) return
    this.#stopping = false
    for (let i = 0; i < this.#o.concurrency; i++) this.#workers.push(this.#work(i))
  }

  /** New events were stored (for this organization, or any): idle workers look at once instead of waiting. */
  wake (organization?: string): void {
    this.#lanes.wake(organization)
    for (const wake of this.#wakers) wake()
  }

  /**
   * An organization was created, changed (its Lago key rotated, say), enabled or disabled: the list is read again,
   * and a paused organization that changed is tried again at once.
   */
  async organizationChanged (organization?: string): Promise<void> {
    await this.#reading?.catch(() => {}) // a read that started before the change may miss it
    this.#organizationsReadAt = Number.NEGATIVE_INFINITY
    await this.#readOrganizations()
    if (organization !== undefined && this.#lanes.resume(organization)) {
      // Its events were given back until the end of the pause: due now.
      await releasePausedNow(this.#o.db, organization)
      this.#o.log.info({ organization }, 'organization changed: its forwarding resumes (tried again at once)')
    }
    this.wake(organization)
  }

  /** Lets in-flight batches finish, then gives back anything still claimed so another replica can send it. */
  async stop (): Promise<void> {
    this.#stopping = true
    this.wake()
    await Promise.all(this.#workers)
    await Promise.allSettled(this.#recording)
    this.#workers = []
    this.#claimedAhead.clear()
    await releaseAllClaimedBy(this.#o.db, this.worker).catch((err: unknown) => {
      this.#o.log.warn({ err }, 'could not release claimed usage events at shutdown; their leases expire instead')
    })
  }

  /** The organizations this forwarder serves (the active ones, as last read). */
  get organizations (): readonly string[] {
    return this.#lanes.organizations
  }

  /** One organization's forwarding; null for an organization it does not serve (disabled, unknown). */
  state (organization: string): ForwarderState | null {
    const lane = this.#lanes.state(organization)
    if (lane === null) return null
    return this.#stopping ? { ...lane, status: 'stopped' } : lane
  }

  async #readOrganizations (): Promise<void> {
    const refreshMs = this.#o.organizationsRefreshMs ?? 5000
    if (Date.now() - this.#organizationsReadAt < refreshMs) return
    this.#reading ??= (async () => {
      try {
        this.#lanes.setOrganizations(await this.#o.organizations())
        this.#organizationsReadAt = Date.now()
      } finally {
        this.#reading = null
      }
    })()
    await this.#reading
  }

  /**
   * Worker `index`'s loop. Ingestion first: while ingestion is writing, only the first `concurrencyWhileIngesting`
   * workers forward, the others look again every INGESTION_CHECK_MS. Eight batches at once took the CPUs and the WAL
   * from ingestion's commits (its p99 at 5,000 req/s: 450 ms while a backlog drained, 43–56 ms with one worker, 42–
   * 61 ms without forwarding; letting every worker run but one batch at a time, claim to settle, still gave
   * 148–213 ms).
   */
  async #work (index: number): Promise<void> {
    // Consecutive cycles PostgreSQL failed: the wait before the next grows with them.
    let databaseFailures = 0
    while (!this.#stopping) {
      if (index >= (this.#o.concurrencyWhileIngesting ?? this.#o.concurrency) && this.#o.ingestionWriting?.() === true) {
        await this.#sleep(INGESTION_CHECK_MS, false)
        continue
      }
      // A delivered batch could not be recorded (see #recordLater): every worker waits as after a failed cycle.
      const recordFailedWait = this.#recordFailedUntil - Date.now()
      if (recordFailedWait > 0) {
        await this.#sleep(recordFailedWait, false)
        continue
      }
      let probing: string | null = null
      try {
        await this.#readOrganizations()
        const turn = this.#lanes.next(this.#o.pollIntervalMs)
        if ('waitMs' in turn) {
          await this.#sleep(Math.max(1, turn.waitMs), true)
          continue
        }
        const { organization } = turn
        if (turn.kind === 'probe') {
          probing = organization
          await this.#probe(organization)
          continue
        }
        const lane = await this.#lane(organization)
        if (lane === null) continue
        const batchStarted = performance.now()
        const batch = await this.#claim(lane)
        if (batch.length === 0) {
          this.#lanes.idle(organization, this.#o.pollIntervalMs, turn.wakes)
          continue
        }
        // Another worker may have paused this organization while this one was claiming.
        if (this.#lanes.isPaused(organization)) {
          this.#settled(organization, 'released', await release(this.#o.db, batch, this.#lanes.pauseRemaining(organization)))
          continue
        }
        await this.#deliver(lane, batch)
        databaseFailures = 0
        // Yielding to ingestion, but for at most nine times the batch's own time: forwarding keeps a tenth at least.
        const pause = Math.min(this.#o.ingestionPauseMs?.() ?? 0, 9 * (performance.now() - batchStarted))
        if (pause > 0 && !this.#stopping) await this.#sleep(pause, false)
      } catch (err) {
        if (probing !== null) this.#lanes.probeAbandoned(probing)
        // PostgreSQL trouble or a bug: claimed events keep their lease and come back when it expires.
        if (databaseUnavailable(err)) {
          // An outage is logged once by the connection layer; retried with jittered backoff, capped at 5 s, so
          // that forwarding resumes within seconds of PostgreSQL's return.
          databaseFailures++
          const ceiling = Math.min(5000, this.#o.pollIntervalMs * 2 ** Math.min(databaseFailures, 10))
          await this.#sleep(ceiling / 2 + Math.random() * ceiling / 2, false)
          continue
        }
        databaseFailures = 0
        this.#o.log.error({ err }, 'forwarder cycle failed; retrying shortly')
        await this.#sleep(this.#failedCycleWaitMs, false)
      }
    }
  }

  /**
   * A batch of the organization's due events, claimed by this replica. Claims of one organization are taken one at
   * a time, each after the previous one committed: claims taken at once picked the same events (each read before
   * the other committed), and the later one, finding them claimed, took another pass while it held their rows locked
   * and kept the earlier one's settle waiting. Each claim takes CLAIM_AHEAD batches (one while ingestion writes); the
   * workers after it take the rest without a claim of their own.
   */
  async #claim (lane: Lane): Promise<ClaimedEvent[]> {
    const { organization } = lane
    const take = async (): Promise<ClaimedEvent[]> => {
      const ahead = this.#claimedAhead.get(organization) ?? []
      for (let next = ahead.shift(); next !== undefined; next = ahead.shift()) {
        // Claimed ahead before a pause, say: it goes back rather than start its send with less than 90 % of its
        // lease (a send that isolates a refused event one by one can take long).
        if (Date.now() - next.claimedAt < this.#o.leaseMs / 10) return next.batch
        await release(this.#o.db, next.batch)
      }
      const size = this.#o.batchSize
      // While ingestion writes, one batch: a claim of four is a longer burst of work for PostgreSQL to put ahead of
      // ingestion's commits.
      const batches = this.#o.ingestionWriting?.() === true ? 1 : CLAIM_AHEAD
      const events = await claimDueEvents(this.#o.db, { organization, worker: this.worker, limit: size * batches, leaseMs: this.#o.leaseMs, metricCode: lane.metricCode })
      const claimedAt = Date.now()
      for (let i = size; i < events.length; i += size) ahead.push({ batch: events.slice(i, i + size), claimedAt })
      this.#claimedAhead.set(organization, ahead)
      return events.slice(0, size)
    }
    const previous = this.#claiming.get(organization) ?? Promise.resolve()
    const next = previous.then(take, take)
    this.#claiming.set(organization, next)
    try {
      return await next
    } finally {
      if (this.#claiming.get(organization) === next) this.#claiming.delete(organization)
    }
  }

  /**
   * The organization's Lago client and metric code. Without a usable client (no key, a key that cannot be
   * read) the organization is paused as unauthorized: its events wait, nothing is dead-lettered.
   */
  async #lane (organization: string): Promise<Lane | null> {
    try {
      const [lago, metricCode] = await Promise.all([this.#o.lagoFor(organization), this.#o.metricCodeFor(organization)])
      return { organization, lago, metricCode }
    } catch (err) {
      if (databaseUnavailable(err)) throw err
      // No usable key (unset, or stored but unreadable): nothing can be sent until an operator fixes it.
      this.#pauseFor(organization, err, 'unauthorized')
      return null
    }
  }

  async #probe (organization: string): Promise<void> {
    const lane = await this.#lane(organization)
    if (lane === null) return
    try {
      await lane.lago.getBillableMetric(lane.metricCode, this.#observe(organization, 'probe'))
      this.#resume(organization)
    } catch (err) {
      if (err instanceof LagoApiError && err.status === 404) {
        this.#resume(organization) // Lago answers and accepts the key; the metric is bootstrap's business
        return
      }
      this.#pauseFor(organization, err)
    }
  }

  #resume (organization: string): void {
    const state = this.#lanes.state(organization)
    if (this.#lanes.resume(organization)) this.#o.log.info({ organization, after: state?.status }, 'the organization\'s Lago is reachable again: its forwarding resumes')
    this.wake(organization)
  }

  /** Pauses the organization's workers: how long depends on why (Retry-After when Lago gave one). */
  #pauseFor (organization: string, err: unknown, why?: PauseReason): void {
    const reason: PauseReason = why ?? (classifyLagoError(err) === 'credentials'
      ? 'unauthorized'
      : err instanceof LagoApiError && err.status === 429 ? 'rate_limited' : 'lago_unavailable')
    const retryAfter = err instanceof LagoApiError ? err.retryAfterMs : null
    const message = err instanceof Error ? err.message : String(err)
    if (this.#lanes.pause(organization, reason, message, retryAfter)) {
      const log = reason === 'unauthorized' ? this.#o.log.error.bind(this.#o.log) : this.#o.log.warn.bind(this.#o.log)
      log({ err, organization, status: reason }, reason === 'unauthorized'
        ? 'Lago refuses the organization\'s API key: its forwarding is paused until the key is accepted; nothing is dead-lettered'
        : `the organization's forwarding is paused (${reason}); its events wait, no attempts are spent; other organizations go on`)
    }
  }

  async #deliver (lane: Lane, batch: ClaimedEvent[]): Promise<void> {
    const ready = batch.filter((e) => e.body !== null)
    const unresolved = batch.filter((e) => e.body === null)
    if (unresolved.length > 0) {
      let resolved: Awaited<ReturnType<SubscriptionResolver>>
      try {
        resolved = await this.#o.resolveSubscriptions(lane.organization, [...new Set(unresolved.map((e) => e.customerExternalId))])
      } catch (err) {
        await this.#handleUnreachable(lane, err, batch)
        return
      }
      const subscriptionOf = new Map<number, string>()
      const unmapped: Array<ClaimedEvent & { reason: string }> = []
      for (const e of unresolved) {
        const r = resolved.get(e.customerExternalId)
        if (r !== undefined && 'subscription' in r) subscriptionOf.set(e.id, r.subscription)
        else unmapped.push({ ...e, reason: r?.unmapped ?? 'no Lago subscription' })
      }
      await markUnmapped(this.#o.db, unmapped)
      ready.push(...await freezeBodies(this.#o.db, unresolved.filter((e) => subscriptionOf.has(e.id)), subscriptionOf, lane.metricCode))
    }
    await this.#send(lane, ready.sort((a, b) => a.id - b.id))
  }

  async #send (lane: Lane, events: ClaimedEvent[]): Promise<void> {
    const { organization } = lane
    let pending = events
    // Checked before every send, so that a pause (set by this worker or another) also stops the resends of a
    // refused batch and the one-by-one sends of #isolate.
    while (pending.length > 0 && !this.#stopping && !this.#lanes.isPaused(organization)) {
      try {
        await lane.lago.createBatchEvents(pending.map((e) => e.body as EventInputObject), this.#observe(organization, 'events.batch'))
      } catch (err) {
        const perEvent = err instanceof LagoApiError && err.status === 422 ? err.eventErrors() : null
        if (perEvent !== null) {
          // Lago rolled the whole batch back. Already-stored events count as delivered; rejected ones are
          // dead-lettered with Lago's reason; the others go again, without them.
          const delivered: ClaimedEvent[] = []
          const rejected: Array<ClaimedEvent & { error: DeliveryError }> = []
          const rest: ClaimedEvent[] = []
          for (const [i, e] of pending.entries()) {
            const errors = perEvent.get(i)
            if (errors === undefined) rest.push(e)
            else if (Object.entries(errors).every(([field, codes]) => field === 'transaction_id' && codes.every((c) => c === 'value_already_exist'))) delivered.push(e)
            else rejected.push({ ...e, error: { kind: 'rejected', status: 422, message: `Lago rejected the event: ${JSON.stringify(errors)}`, lago: errors } })
          }
          this.#settled(organization, 'duplicate', await markForwarded(this.#o.db, delivered))
          this.#settled(organization, 'dead', await markDead(this.#o.db, rejected))
          if (rejected.length > 0) this.#o.log.warn({ organization, request_ids: rejected.map((e) => e.requestId), lago: err instanceof LagoApiError ? err.body : undefined }, 'Lago rejected usage events: dead-lettered')
          pending = rest
          continue
        }
        const kind = classifyLagoError(err)
        if (kind === 'permanent') {
          await this.#isolate(lane, pending, err)
          return
        }
        await this.#handleUnreachable(lane, err, pending)
        return
      }
      await this.#recordLater(organization, pending)
      return
    }
    if (pending.length > 0) this.#settled(organization, 'released', await release(this.#o.db, pending, this.#lanes.pauseRemaining(organization)))
  }

  /** How long the workers wait after a cycle failed for a reason other than PostgreSQL's availability. */
  get #failedCycleWaitMs (): number {
    return Math.min(this.#o.pollIntervalMs * 5, 5000)
  }

  /**
   * Records a delivered batch while its worker goes on to the next one: the settle (a write of every event, about a
   * third of a batch's time when each Lago call takes 50 ms) overlaps the next send instead of preceding it. Until
   * it commits the events stay claimed, so nothing claims them again; stop() waits for it. At most `concurrency`
   * settles at once (a worker waits for one to finish beyond that), and none in the background while ingestion
   * writes: then the batch's time includes its settle, and the forwarder's yield counts it.
   */
  async #recordLater (organization: string, events: ClaimedEvent[]): Promise<void> {
    if (this.#o.ingestionWriting?.() === true) {
      this.#settled(organization, 'forwarded', await this.#recordDelivered(events))
      return
    }
    while (this.#recording.size >= this.#o.concurrency) await Promise.race(this.#recording)
    const recording = this.#recordDelivered(events).then((n) => { this.#settled(organization, 'forwarded', n) }).catch((err: unknown) => {
      // Their claims run out and they are sent again, byte-identical: Lago answers value_already_exist. A
      // PostgreSQL outage is logged once by the connection layer. Meanwhile the workers back off, as after a failed
      // cycle, rather than keep sending what they may not be able to record either.
      if (!databaseUnavailable(err)) this.#o.log.error({ err, organization }, 'could not record delivered usage events; they are sent again when their claim expires (Lago recognises them)')
      this.#recordFailedUntil = Date.now() + this.#failedCycleWaitMs
    }).finally(() => { this.#recording.delete(recording) })
    this.#recording.add(recording)
  }

  /**
   * Lago holds these events: that must reach PostgreSQL even if it is restarting right now, or the events would
   * be sent again when their lease ends (Lago would answer value_already_exist, so nothing is billed twice, but
   * it is a needless resend). Retried every second at most, for as long as a PostgreSQL restart or failover
   * takes (30 s, or the lease if longer); repeating it is harmless, and once the events were claimed again (the
   * lease ran out) the claim token no longer matches and it changes nothing.
   */
  async #recordDelivered (events: ClaimedEvent[]): Promise<number> {
    const deadline = Date.now() + Math.max(this.#o.leaseMs, 30_000)
    for (let attempt = 1; ; attempt++) {
      try {
        return await markForwarded(this.#o.db, events)
      } catch (err) {
        const wait = Math.min(125 * 2 ** Math.min(attempt - 1, 3), deadline - Date.now())
        if (!databaseUnavailable(err) || wait <= 0 || this.#stopping) throw err
        await this.#sleep(wait, false)
      }
    }
  }

  /**
   * A 4xx for the whole batch that names no event: send the events one by one so that only the culprit is
   * dead-lettered.
   */
  async #isolate (lane: Lane, events: ClaimedEvent[], err: unknown): Promise<void> {
    if (events.length > 1) {
      for (const e of events) await this.#send(lane, [e])
      return
    }
    const status = err instanceof LagoApiError ? err.status : null
    const error: DeliveryError = { kind: 'rejected', status, message: err instanceof Error ? err.message : String(err), lago: err instanceof LagoApiError ? err.body : undefined }
    this.#o.log.warn({ organization: lane.organization, request_id: events[0].requestId, err }, 'Lago rejected a usage event: dead-lettered')
    this.#settled(lane.organization, 'dead', await markDead(this.#o.db, events.map((e) => ({ ...e, error }))))
  }

  /**
   * A retryable failure or refused credentials. The organization's Lago down (the probe fails too), rate
   * limiting and refused credentials pause that organization and cost no attempt; if its Lago answers the
   * probe, the failure belongs to this batch: its events spend an attempt and are retried with backoff.
   */
  async #handleUnreachable (lane: Lane, err: unknown, events: ClaimedEvent[]): Promise<void> {
    const { organization } = lane
    const kind = classifyLagoError(err)
    const rateLimited = err instanceof LagoApiError && err.status === 429
    if (kind === 'credentials' || rateLimited || !(await this.#lagoAnswers(lane))) {
      this.#pauseFor(organization, err)
      // Due again when the pause ends, so that no worker (nor another replica) picks them up sooner.
      this.#settled(organization, 'released', await release(this.#o.db, events, this.#lanes.pauseRemaining(organization)))
      return
    }
    const retryAfter = err instanceof LagoApiError ? err.retryAfterMs : null
    const status = err instanceof LagoApiError ? err.status : null
    const message = err instanceof Error ? err.message : String(err)
    this.#lanes.noteError(organization, message)
    const { retried, dead } = await scheduleRetry(this.#o.db,
      events.map((e) => ({ ...e, delayMs: retryDelay(e.attempts + 1, this.#o.retry, retryAfter) })),
      { kind: 'transient', status, message }, this.#o.maxAttempts)
    this.#settled(organization, 'retry', retried)
    this.#settled(organization, 'dead', dead)
  }

  /** One immediate probe: does the organization's Lago answer at all (any status but 5xx/429, or no answer)? */
  async #lagoAnswers (lane: Lane): Promise<boolean> {
    try {
      await lane.lago.getBillableMetric(lane.metricCode, this.#observe(lane.organization, 'probe'))
      return true
    } catch (err) {
      return err instanceof LagoApiError && classifyLagoError(err) === 'permanent'
    }
  }

  #settled (organization: string, outcome: SettledOutcome, count: number): void {
    if (count > 0) this.#o.onSettled?.(organization, outcome, count)
  }

  /** Every HTTP attempt becomes a webhook_delivery_logs row. */
  #observe (organization: string, eventType: string): CallOptions {
    return {
      onAttempt: (attempt: LagoAttempt) => {
        recordDeliveryAttempt(this.#o.db, {
          organization_id: organization,
          event_type: eventType,
          endpoint: `${attempt.method} ${attempt.path}`,
          request_count: attempt.eventCount ?? 0,
          http_status: attempt.statusCode,
          duration_ms: Math.round(attempt.durationMs),
          error: attempt.error?.message ?? null,
          worker: this.worker
        }).catch((err: unknown) => {
          // A PostgreSQL outage is logged once by the connection layer.
          if (!databaseUnavailable(err)) this.#o.log.warn({ err }, 'could not record a delivery attempt')
        })
      }
    }
  }

  /** Sleeps, interrupted by stop() and, when idle, by wake(). */
  async #sleep (ms: number, wakeable: boolean): Promise<void> {
    await new Promise<void>((resolve) => {
      const onWake = (): void => { if (wakeable || this.#stopping) done() }
      const done = (): void => {
        clearTimeout(timer)
        this.#wakers.delete(onWake)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#wakers.add(onWake)
    })
  }
}
