import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { Database, LagoEventBody } from '../../../db/database.js'
import type { CallOptions, LagoAttempt } from '../lago/client.js'
import { LagoApiError, classifyLagoError } from '../lago/errors.js'
import type { EventInputObject } from '../lago/types.js'
import { retryDelay, type BackoffPolicy } from './backoff.js'
import {
  claimDueEvents, freezeBodies, markDead, markForwarded, markUnmapped, recordDeliveryAttempt, release,
  releaseAllClaimedBy, scheduleRetry, type ClaimedEvent, type DeliveryError
} from './repository.js'

/** What the forwarder needs from Lago: the batch endpoint and a cheap authenticated call to probe with. */
export interface LagoEventsApi {
  createBatchEvents: (events: EventInputObject[], options?: CallOptions) => Promise<unknown>
  getBillableMetric: (code: string, options?: CallOptions) => Promise<unknown>
}

/** Where the usage events of a set of customers go: their subscription, or why there is none yet. */
export type SubscriptionResolver = (customerIds: string[]) => Promise<Map<string, { subscription: string } | { unmapped: string }>>

export interface ForwarderOptions {
  db: Kysely<Database>
  lago: LagoEventsApi
  resolveSubscriptions: SubscriptionResolver
  log: FastifyBaseLogger
  metricCode: string
  batchSize: number
  concurrency: number
  pollIntervalMs: number
  leaseMs: number
  maxAttempts: number
  retry: BackoffPolicy
  /** Backoff between probes while Lago is down or refuses the key. */
  probe: BackoffPolicy
  /** Called for every send's outcome (metrics). */
  onSettled?: (outcome: 'forwarded' | 'duplicate' | 'dead' | 'retry' | 'released', count: number) => void
}

export type ForwarderStatus = 'running' | 'lago_unavailable' | 'rate_limited' | 'unauthorized' | 'stopped'

export interface ForwarderState {
  status: ForwarderStatus
  since: string
  /** While paused: when the next probe goes out. */
  next_probe_at: string | null
  last_error: string | null
}

interface Pause { status: Exclude<ForwarderStatus, 'running' | 'stopped'>, until: number, failures: number }

/**
 * Sends stored usage events to Lago, batch by batch, each event exactly once in effect:
 * - events are claimed with FOR UPDATE SKIP LOCKED and a lease, so replicas never send the same event at once,
 *   and a dead replica's events are claimed again when the lease runs out;
 * - an event's body is frozen at its first send, so a resend after a lost reply is byte-identical and Lago
 *   answers value_already_exist, which counts as delivered;
 * - Lago down (timeouts, refused connections, 5xx that a probe confirms), rate limited or refusing the key pauses
 *   all workers; one probe per interval decides when to resume, and no event's attempts are spent meanwhile;
 * - an event Lago rejects (per-index 4xx in an atomic batch) is dead-lettered alone, the rest is resent.
 */
export class Forwarder {
  readonly worker = `${process.pid}-${randomUUID().slice(0, 8)}`
  readonly #o: ForwarderOptions
  #pause: Pause | null = null
  #probing: Promise<void> | null = null
  #stopping = false
  #workers: Array<Promise<void>> = []
  #wakers = new Set<() => void>()
  #since = new Date()
  #lastError: string | null = null

  constructor (options: ForwarderOptions) {
    this.#o = options
  }

  start (): void {
    if (this.#workers.length > 0) return
    this.#stopping = false
    for (let i = 0; i < this.#o.concurrency; i++) this.#workers.push(this.#work())
  }

  /** New events were stored: idle workers look at once instead of waiting for the next poll. */
  wake (): void {
    for (const wake of this.#wakers) wake()
  }

  /** Lets in-flight batches finish, then gives back anything still claimed so another replica can send it. */
  async stop (): Promise<void> {
    this.#stopping = true
    this.wake()
    await Promise.all(this.#workers)
    this.#workers = []
    await releaseAllClaimedBy(this.#o.db, this.worker).catch((err: unknown) => {
      this.#o.log.warn({ err }, 'could not release claimed usage events at shutdown; their leases expire instead')
    })
  }

  state (): ForwarderState {
    const pause = this.#pause
    return {
      status: this.#stopping ? 'stopped' : pause?.status ?? 'running',
      since: this.#since.toISOString(),
      next_probe_at: pause !== null ? new Date(pause.until).toISOString() : null,
      last_error: this.#lastError
    }
  }

  async #work (): Promise<void> {
    while (!this.#stopping) {
      try {
        if (this.#pause !== null) {
          await this.#waitOutPause()
          continue
        }
        const batch = await claimDueEvents(this.#o.db, { worker: this.worker, limit: this.#o.batchSize, leaseMs: this.#o.leaseMs, metricCode: this.#o.metricCode })
        if (batch.length === 0) {
          await this.#sleep(this.#o.pollIntervalMs, true)
          continue
        }
        // Another worker may have paused forwarding while this one was claiming.
        if (this.#pause !== null) {
          this.#settled('released', await release(this.#o.db, batch, this.#pauseRemaining()))
          continue
        }
        await this.#deliver(batch)
      } catch (err) {
        // PostgreSQL trouble or a bug: claimed events keep their lease and come back when it expires.
        this.#lastError = err instanceof Error ? err.message : String(err)
        this.#o.log.error({ err }, 'forwarder cycle failed; retrying shortly')
        await this.#sleep(Math.min(this.#o.pollIntervalMs * 5, 5000), false)
      }
    }
  }

  async #waitOutPause (): Promise<void> {
    const pause = this.#pause
    if (pause === null) return
    const wait = pause.until - Date.now()
    if (wait > 0) {
      await this.#sleep(wait, false)
      return
    }
    // One probe for all workers.
    this.#probing ??= this.#probe(pause).finally(() => { this.#probing = null })
    await this.#probing
  }

  async #probe (pause: Pause): Promise<void> {
    try {
      await this.#o.lago.getBillableMetric(this.#o.metricCode, this.#observe('probe'))
      this.#resume()
    } catch (err) {
      if (err instanceof LagoApiError && err.status === 404) {
        this.#resume() // Lago answers and accepts the key; the metric is bootstrap's business
        return
      }
      this.#pauseFor(err, pause.failures + 1)
    }
  }

  #pauseRemaining (): number {
    return this.#pause === null ? 0 : Math.max(0, this.#pause.until - Date.now())
  }

  #resume (): void {
    if (this.#pause !== null) this.#o.log.info({ after: this.#pause.status }, 'Lago is reachable again: forwarding resumes')
    this.#pause = null
    this.#since = new Date()
    this.wake()
  }

  /** Pauses every worker: how long depends on why (Retry-After when Lago gave one). */
  #pauseFor (err: unknown, failures: number): void {
    const status: Pause['status'] = classifyLagoError(err) === 'credentials'
      ? 'unauthorized'
      : err instanceof LagoApiError && err.status === 429 ? 'rate_limited' : 'lago_unavailable'
    const retryAfter = err instanceof LagoApiError ? err.retryAfterMs : null
    const delay = Math.max(this.#o.probe.baseMs, retryDelay(failures, this.#o.probe, retryAfter))
    const message = err instanceof Error ? err.message : String(err)
    if (this.#pause?.status !== status) {
      const log = status === 'unauthorized' ? this.#o.log.error.bind(this.#o.log) : this.#o.log.warn.bind(this.#o.log)
      log({ err, status }, status === 'unauthorized'
        ? 'Lago refuses the API key (LAGO_API_KEY): forwarding is paused until it is accepted; nothing is dead-lettered'
        : `forwarding paused (${status}); events wait, no attempts are spent`)
      this.#since = new Date()
    }
    this.#lastError = message
    this.#pause = { status, until: Date.now() + delay, failures }
  }

  async #deliver (batch: ClaimedEvent[]): Promise<void> {
    const ready = batch.filter((e) => e.body !== null)
    const unresolved = batch.filter((e) => e.body === null)
    if (unresolved.length > 0) {
      let resolved: Awaited<ReturnType<SubscriptionResolver>>
      try {
        resolved = await this.#o.resolveSubscriptions([...new Set(unresolved.map((e) => e.customerExternalId))])
      } catch (err) {
        await this.#handleUnreachable(err, batch)
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
      ready.push(...await freezeBodies(this.#o.db, unresolved.filter((e) => subscriptionOf.has(e.id)), subscriptionOf, this.#o.metricCode))
    }
    await this.#send(ready.sort((a, b) => a.id - b.id))
  }

  async #send (events: ClaimedEvent[]): Promise<void> {
    let pending = events
    // Checked before every send, so that a pause (set by this worker or another) also stops the resends of a
    // refused batch and the one-by-one sends of #isolate.
    while (pending.length > 0 && !this.#stopping && this.#pause === null) {
      try {
        await this.#o.lago.createBatchEvents(pending.map((e) => e.body as LagoEventBody as EventInputObject), this.#observe('events.batch'))
        this.#settled('forwarded', await markForwarded(this.#o.db, pending))
        return
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
          this.#settled('duplicate', await markForwarded(this.#o.db, delivered))
          this.#settled('dead', await markDead(this.#o.db, rejected))
          if (rejected.length > 0) this.#o.log.warn({ request_ids: rejected.map((e) => e.requestId), lago: err instanceof LagoApiError ? err.body : undefined }, 'Lago rejected usage events: dead-lettered')
          pending = rest
          continue
        }
        const kind = classifyLagoError(err)
        if (kind === 'permanent') {
          await this.#isolate(pending, err)
          return
        }
        await this.#handleUnreachable(err, pending)
        return
      }
    }
    if (pending.length > 0) this.#settled('released', await release(this.#o.db, pending, this.#pauseRemaining()))
  }

  /**
   * A 4xx for the whole batch that names no event: send the events one by one so that only the culprit is
   * dead-lettered.
   */
  async #isolate (events: ClaimedEvent[], err: unknown): Promise<void> {
    if (events.length > 1) {
      for (const e of events) await this.#send([e])
      return
    }
    const status = err instanceof LagoApiError ? err.status : null
    const error: DeliveryError = { kind: 'rejected', status, message: err instanceof Error ? err.message : String(err), lago: err instanceof LagoApiError ? err.body : undefined }
    this.#o.log.warn({ request_id: events[0].requestId, err }, 'Lago rejected a usage event: dead-lettered')
    this.#settled('dead', await markDead(this.#o.db, events.map((e) => ({ ...e, error }))))
  }

  /**
   * A retryable failure or refused credentials. Lago down (the probe fails too), rate limiting and refused
   * credentials pause everything and cost no attempt; if Lago answers the probe, the failure belongs to this
   * batch: its events spend an attempt and are retried with backoff.
   */
  async #handleUnreachable (err: unknown, events: ClaimedEvent[]): Promise<void> {
    const kind = classifyLagoError(err)
    const rateLimited = err instanceof LagoApiError && err.status === 429
    if (kind === 'credentials' || rateLimited || !(await this.#lagoAnswers())) {
      this.#pauseFor(err, 1)
      // Due again when the pause ends, so that no worker (nor another replica) picks them up sooner.
      this.#settled('released', await release(this.#o.db, events, this.#pauseRemaining()))
      return
    }
    const retryAfter = err instanceof LagoApiError ? err.retryAfterMs : null
    const status = err instanceof LagoApiError ? err.status : null
    const message = err instanceof Error ? err.message : String(err)
    this.#lastError = message
    const { retried, dead } = await scheduleRetry(this.#o.db,
      events.map((e) => ({ ...e, delayMs: retryDelay(e.attempts + 1, this.#o.retry, retryAfter) })),
      { kind: 'transient', status, message }, this.#o.maxAttempts)
    this.#settled('retry', retried)
    this.#settled('dead', dead)
  }

  /** One immediate probe: does Lago answer at all (any status but 5xx/429, or no answer)? */
  async #lagoAnswers (): Promise<boolean> {
    try {
      await this.#o.lago.getBillableMetric(this.#o.metricCode, this.#observe('probe'))
      return true
    } catch (err) {
      return err instanceof LagoApiError && classifyLagoError(err) === 'permanent'
    }
  }

  #settled (outcome: Parameters<NonNullable<ForwarderOptions['onSettled']>>[0], count: number): void {
    if (count > 0) this.#o.onSettled?.(outcome, count)
  }

  /** Every HTTP attempt becomes a webhook_delivery_logs row. */
  #observe (eventType: string): CallOptions {
    return {
      onAttempt: (attempt: LagoAttempt) => {
        recordDeliveryAttempt(this.#o.db, {
          event_type: eventType,
          endpoint: `${attempt.method} ${attempt.path}`,
          request_count: attempt.eventCount ?? 0,
          http_status: attempt.statusCode,
          duration_ms: Math.round(attempt.durationMs),
          error: attempt.error?.message ?? null,
          worker: this.worker
        }).catch((err: unknown) => { this.#o.log.warn({ err }, 'could not record a delivery attempt') })
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

