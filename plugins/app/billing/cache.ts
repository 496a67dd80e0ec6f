import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

export interface LagoReadCacheOptions {
  redis: Redis
  /** 0 turns the cache off. */
  ttlSeconds: number
  log: FastifyBaseLogger
}

const PREFIX = 'lago-cache:'
const WARN_EVERY_MS = 60_000

/**
 * A short-lived Redis cache in front of Lago reads. Single resources live under `item:<kind>:<id>`; the pages of
 * a list all live in one hash per collection (`list:<collection>`), so that a write drops every page of it with
 * one DEL. Redis is a convenience here: when it fails, reads go to Lago and writes are not blocked.
 */
export class LagoReadCache {
  readonly #o: LagoReadCacheOptions
  #lastWarning = 0

  constructor (options: LagoReadCacheOptions) {
    this.#o = options
  }

  get enabled (): boolean {
    return this.#o.ttlSeconds > 0
  }

  /** The cached value of `kind`/`id`, else what `load` returns (then cached). Errors of `load` are not cached. */
  async item<T> (kind: string, id: string, load: () => Promise<T>): Promise<T> {
    if (!this.enabled) return await load()
    const key = `${PREFIX}item:${kind}:${id}`
    const cached = await this.#try(async () => await this.#o.redis.get(key))
    if (typeof cached === 'string') return JSON.parse(cached) as T
    const value = await load()
    await this.#try(async () => await this.#o.redis.set(key, JSON.stringify(value), 'EX', this.#o.ttlSeconds))
    return value
  }

  /** One page (`field` names the query) of a list, cached like an item. */
  async page<T> (collection: string, field: string, load: () => Promise<T>): Promise<T> {
    if (!this.enabled) return await load()
    const key = `${PREFIX}list:${collection}`
    const cached = await this.#try(async () => await this.#o.redis.hget(key, field))
    if (typeof cached === 'string') return JSON.parse(cached) as T
    const value = await load()
    await this.#try(async () => {
      // NX: a page added late expires with the others rather than keeping the whole list alive.
      await this.#o.redis.multi().hset(key, field, JSON.stringify(value)).expire(key, this.#o.ttlSeconds, 'NX').exec()
    })
    return value
  }

  /** Forgets these items and every page of these collections (after a write through the API). */
  async invalidate ({ items = [], collections = [] }: { items?: Array<[kind: string, id: string]>, collections?: string[] }): Promise<void> {
    if (!this.enabled) return
    const keys = [...items.map(([kind, id]) => `${PREFIX}item:${kind}:${id}`), ...collections.map((c) => `${PREFIX}list:${c}`)]
    if (keys.length > 0) await this.#try(async () => await this.#o.redis.del(...keys))
  }

  async #try<T> (operation: () => Promise<T>): Promise<T | undefined> {
    try {
      return await operation()
    } catch (err) {
      const now = Date.now()
      if (now - this.#lastWarning > WARN_EVERY_MS) {
        this.#lastWarning = now
        this.#o.log.warn({ err }, 'Redis unavailable for the Lago cache: reading from Lago directly (logged once a minute)')
      }
      return undefined
    }
  }
}
