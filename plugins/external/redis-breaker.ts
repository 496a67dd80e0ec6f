import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

/** What callers of Redis get instead of an answer: Redis is not configured, or the breaker is open. */
export class RedisUnavailableError extends Error {
  constructor (reason: string) {
    super(`Redis unavailable: ${reason}`)
    this.name = 'RedisUnavailableError'
  }
}

export type RedisState =
  | { status: 'not_configured' }
  | { status: 'up' }
  | { status: 'down', since: Date, error: string }

export interface RedisBreakerOptions {
  /** null: REDIS_URL is unset, every call is refused at once. */
  client: Redis | null
  /** Where Redis was looked for (host:port, never the password), for log lines. */
  where: string
  log: FastifyBaseLogger
  /** Consecutive failures (errors or timeouts) that open the breaker. */
  failureThreshold: number
  /** How long an open breaker refuses calls before a background PING probes Redis. */
  cooldownMs: number
  /** Starts open (Redis did not answer at start) rather than closed. */
  startDown?: string
}

/**
 * A circuit breaker in front of Redis, which is only ever a cache and a rate-limit store here. Closed: calls go
 * to Redis (each bounded by the client's command timeout). After `failureThreshold` consecutive failures it
 * opens: calls fail at once with RedisUnavailableError (callers fall back in-process) and Redis gets no traffic;
 * every `cooldownMs` a PING probes it in the background, never on a request's path, and the first answer closes
 * the breaker. Opening and closing are logged once each.
 */
export class RedisBreaker {
  readonly client: Redis | null
  readonly #o: RedisBreakerOptions
  #failures = 0
  #down: { since: Date, error: string } | null = null
  #probe: NodeJS.Timeout | undefined
  #closed = false

  constructor (options: RedisBreakerOptions) {
    this.#o = options
    this.client = options.client
    if (options.client !== null && options.startDown !== undefined) this.#open(options.startDown)
  }

  get state (): RedisState {
    if (this.client === null) return { status: 'not_configured' }
    return this.#down === null ? { status: 'up' } : { status: 'down', ...this.#down }
  }

  /** Whether a call would reach Redis now. */
  get available (): boolean {
    return this.client !== null && this.#down === null
  }

  /** Runs `operation` on Redis, or rejects at once with RedisUnavailableError while Redis is away. */
  async call<T> (operation: (client: Redis) => Promise<T>): Promise<T> {
    const client = this.client
    if (client === null) throw new RedisUnavailableError('REDIS_URL is not set')
    if (this.#down !== null) throw new RedisUnavailableError(this.#down.error)
    try {
      const result = await operation(client)
      this.#failures = 0
      return result
    } catch (err) {
      if (++this.#failures >= this.#o.failureThreshold && this.#down === null) this.#open(err instanceof Error ? err.message : String(err))
      throw err
    }
  }

  /** Stops probing (the service is shutting down). */
  close (): void {
    this.#closed = true
    clearTimeout(this.#probe)
  }

  #open (error: string): void {
    this.#down = { since: new Date(), error }
    this.#o.log.warn({ redis: this.#o.where, error },
      `Redis at ${this.#o.where} is not answering: rate limits are counted in-process (per instance) and the Lago read cache is off until it answers again`)
    this.#scheduleProbe()
  }

  #scheduleProbe (): void {
    if (this.#closed) return
    this.#probe = setTimeout(() => { void this.#runProbe() }, this.#o.cooldownMs)
    this.#probe.unref()
  }

  async #runProbe (): Promise<void> {
    const client = this.client
    if (client === null || this.#closed) return
    try {
      await client.ping()
      const downFor = this.#down !== null ? Date.now() - this.#down.since.getTime() : 0
      this.#down = null
      this.#failures = 0
      this.#o.log.info({ redis: this.#o.where, down_ms: downFor }, `Redis at ${this.#o.where} answers again: rate limits and the Lago read cache are back in Redis`)
    } catch (err) {
      if (this.#down !== null) this.#down.error = err instanceof Error ? err.message : String(err)
      this.#scheduleProbe()
    }
  }
}
