import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { RedisUnavailableError, type RedisBreaker } from '../../external/redis-breaker.js'

export interface LagoReadCacheOptions {
  /** Redis behind its breaker; without REDIS_URL the cache is in-process. */
  redis: RedisBreaker
  /** 0 turns the cache off. */
  ttlSeconds: number
  log: FastifyBaseLogger
  /** Keeps one organization's entries apart from another's (unset: the default organization's keys, as before). */
  namespace?: string
}

const PREFIX = 'lago-cache:'
const WARN_EVERY_MS = 60_000
/** Most entries (items and lists) the in-process cache holds; past it, the oldest go first. */
const LOCAL_MAX_ENTRIES = 1000
/** Most keys remembered for deletion while Redis is away. */
const PENDING_MAX = 10_000

interface LocalEntry { expiresAt: number, value?: string, fields?: Map<string, string> }

/** The cache without REDIS_URL: the same items and list pages, in this process (one instance). */
class LocalStore {
  readonly #entries = new Map<string, LocalEntry>()

  #live (key: string): LocalEntry | undefined {
    const entry = this.#entries.get(key)
    if (entry !== undefined && entry.expiresAt <= Date.now()) this.#entries.delete(key)
    return entry !== undefined && entry.expiresAt > Date.now() ? entry : undefined
  }

  #put (key: string, entry: LocalEntry): void {
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    if (this.#entries.size > LOCAL_MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value as string)
  }

  get (key: string): string | undefined { return this.#live(key)?.value }
  set (key: string, value: string, ttlSeconds: number): void { this.#put(key, { expiresAt: Date.now() + ttlSeconds * 1000, value }) }
  hget (key: string, field: string): string | undefined { return this.#live(key)?.fields?.get(field) }
  hset (key: string, field: string, value: string, ttlSeconds: number): void {
    const list = this.#live(key)
    // Like EXPIRE NX in Redis: a page added late expires with the others.
    if (list?.fields !== undefined) list.fields.set(field, value)
    else this.#put(key, { expiresAt: Date.now() + ttlSeconds * 1000, fields: new Map([[field, value]]) })
  }

  del (keys: string[]): void { for (const key of keys) this.#entries.delete(key) }
}

/**
 * A short-lived cache in front of Lago reads, in Redis (shared by replicas) or, without REDIS_URL, in-process.
 * Single resources live under `item:<kind>:<id>`; the pages of a list all live in one hash per collection
 * (`list:<collection>`), so that a write drops every page of it with one DEL. Redis is a convenience here: while
 * it is down or slow, reads go to Lago and writes are not blocked, and the keys a write could not drop meanwhile
 * are dropped as soon as Redis answers again (so that it never serves what a write made stale).
 */
export class LagoReadCache {
  readonly #o: LagoReadCacheOptions
  readonly #local: LocalStore | null
  readonly #pendingDeletes = new Set<string>()
  #lastWarning = 0

  readonly #prefix: string

  constructor (options: LagoReadCacheOptions) {
    this.#o = options
    this.#prefix = options.namespace !== undefined ? `${PREFIX}${options.namespace}:` : PREFIX
    this.#local = options.redis.client === null ? new LocalStore() : null
  }

  get enabled (): boolean {
    return this.#o.ttlSeconds > 0
  }

  /** The cached value of `kind`/`id`, else what `load` returns (then cached). Errors of `load` are not cached. */
  async item<T> (kind: string, id: string, load: () => Promise<T>): Promise<T> {
    if (!this.enabled) return await load()
    const key = `${this.#prefix}item:${kind}:${id}`
    const ttl = this.#o.ttlSeconds
    const cached = this.#local !== null ? this.#local.get(key) : await this.#try(async (redis) => await redis.get(key))
    if (typeof cached === 'string') return JSON.parse(cached) as T
    const value = await load()
    if (this.#local !== null) this.#local.set(key, JSON.stringify(value), ttl)
    else await this.#try(async (redis) => await redis.set(key, JSON.stringify(value), 'EX', ttl))
    return value
  }

  /** One page (`field` names the query) of a list, cached like an item. */
  async page<T> (collection: string, field: string, load: () => Promise<T>): Promise<T> {
    if (!this.enabled) return await load()
    const key = `${this.#prefix}list:${collection}`
    const ttl = this.#o.ttlSeconds
    const cached = this.#local !== null ? this.#local.hget(key, field) : await this.#try(async (redis) => await redis.hget(key, field))
    if (typeof cached === 'string') return JSON.parse(cached) as T
    const value = await load()
    if (this.#local !== null) this.#local.hset(key, field, JSON.stringify(value), ttl)
    else {
      await this.#try(async (redis) => {
        // NX: a page added late expires with the others rather than keeping the whole list alive.
        await redis.multi().hset(key, field, JSON.stringify(value)).expire(key, ttl, 'NX').exec()
      })
    }
    return value
  }

  /** Forgets these items and every page of these collections (after a write through the API). */
  async invalidate ({ items = [], collections = [] }: { items?: Array<[kind: string, id: string]>, collections?: string[] }): Promise<void> {
    if (!this.enabled) return
    const keys = [...items.map(([kind, id]) => `${this.#prefix}item:${kind}:${id}`), ...collections.map((c) => `${this.#prefix}list:${c}`)]
    if (keys.length === 0) return
    if (this.#local !== null) return this.#local.del(keys)
    const deleted = await this.#try(async (redis) => await redis.del(...keys))
    if (deleted === undefined && this.#pendingDeletes.size + keys.length <= PENDING_MAX) for (const key of keys) this.#pendingDeletes.add(key)
  }

  async #try<T> (operation: (redis: Redis) => Promise<T>): Promise<T | undefined> {
    try {
      return await this.#o.redis.call(async (redis) => {
        if (this.#pendingDeletes.size > 0) {
          const keys = [...this.#pendingDeletes]
          await redis.del(...keys)
          for (const key of keys) this.#pendingDeletes.delete(key)
        }
        return await operation(redis)
      })
    } catch (err) {
      const now = Date.now()
      // The breaker logs Redis going away and coming back; this warns about failures it has not caught yet.
      if (!(err instanceof RedisUnavailableError) && this.#o.redis.available && now - this.#lastWarning > WARN_EVERY_MS) {
        this.#lastWarning = now
        this.#o.log.warn({ err }, 'Redis unavailable for the Lago cache: reading from Lago directly (logged once a minute)')
      }
      return undefined
    }
  }
}
