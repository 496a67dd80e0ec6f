import type pg from 'pg'
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely'
import { databaseUnavailable, markOutcomeUnknown } from './errors.js'
import { preparedName, unmarked } from './prepared.js'

/** What the connection layer reports: PostgreSQL refused or dropped something, or answered again. */
export interface ConnectionObserver {
  failed: (err: unknown) => void
  /** A statement sent at `sentAt` (Date.now()) succeeded. */
  answered: (sentAt: number) => void
}

/**
 * Every pooled connection gets an error listener for its whole life. pg-pool listens only while a connection is
 * idle: one lost while checked out (a restart, crash or failover during a statement or a transaction) emits
 * 'error' with no listener, which crashes the process. The statement in flight fails by itself (and the request
 * gets a 503); the pool discards the broken connection when it is released and opens new ones on demand.
 */
export function guardConnections (pool: pg.Pool, observer: ConnectionObserver): void {
  const lost = (err: Error): void => { observer.failed(err) }
  pool.on('connect', (client) => { client.on('error', lost) })
  pool.on('error', lost)
}

/**
 * Errors a named prepared statement keeps for the connection's life once they happen: its result type changed
 * under it (a migration altered a column it returns, while this replica ran: 0A000 "cached plan must not change
 * result type"), or it is gone (26000). The connection is dropped, and the next one prepares it afresh.
 */
const STALE_PREPARED = new Set(['0A000', '26000'])

const statementKind = (text: string): 'begin' | 'commit' | 'rollback' | 'read' | 'write' => {
  const head = unmarked(text).trimStart().slice(0, 18).toLowerCase()
  if (head.startsWith('begin') || head.startsWith('start transaction')) return 'begin'
  if (head.startsWith('commit')) return 'commit'
  if (head.startsWith('rollback')) return 'rollback'
  return head.startsWith('select') ? 'read' : 'write'
}

/**
 * A pooled connection as Kysely uses it, which knows whether a transaction is open. When PostgreSQL goes away
 * during a statement, it marks the error if the statement may have committed (an autocommit write, or COMMIT),
 * so that the caller is told the outcome is unknown rather than that nothing was stored.
 */
class TrackedClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient
  readonly #observer: ConnectionObserver
  #inTransaction = false
  #commitFailed = false
  /** A prepared statement of this connection can no longer run (see STALE_PREPARED): the pool drops it on release. */
  #stale = false

  constructor (client: pg.PoolClient, observer: ConnectionObserver) {
    this.#client = client
    this.#observer = observer
  }

  checkedOut (): this {
    this.#inTransaction = false
    this.#commitFailed = false
    this.#stale = false
    return this
  }

  query<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>>
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>
  query<R> (sqlOrCursor: string | PostgresCursor<R>, parameters?: readonly unknown[]): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof sqlOrCursor !== 'string') return this.#client.query(sqlOrCursor as unknown as pg.Submittable) as unknown as PostgresCursor<R>
    return this.#run<R>(sqlOrCursor, parameters ?? [])
  }

  async #run<R> (sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
    const kind = statementKind(sql)
    const name = preparedName(sql)
    const sentAt = Date.now()
    try {
      const result = name === undefined
        ? await this.#client.query(sql, [...parameters])
        : await this.#client.query({ name, text: sql, values: [...parameters] })
      if (kind === 'begin') this.#inTransaction = true
      else if (kind === 'commit' || kind === 'rollback') this.#inTransaction = false
      this.#observer.answered(sentAt)
      return result as unknown as PostgresQueryResult<R>
    } catch (err) {
      if (name !== undefined && STALE_PREPARED.has((err as { code?: string }).code ?? '')) this.#stale = true
      if (databaseUnavailable(err)) {
        this.#observer.failed(err)
        // Kysely answers a failed COMMIT with a ROLLBACK and throws the ROLLBACK's error: it carries the mark too.
        const mayHaveCommitted = kind === 'commit' || (kind === 'rollback' && this.#commitFailed) ||
          (kind === 'write' && !this.#inTransaction)
        if (mayHaveCommitted) markOutcomeUnknown(err)
        if (kind === 'commit') this.#commitFailed = true
      }
      if (kind === 'commit' || kind === 'rollback') this.#inTransaction = false
      throw err
    }
  }

  release (): void {
    // pg-pool destroys a connection released with an error: its prepared statements go with it.
    this.#client.release(this.#stale ? new Error('a prepared statement of this connection is stale') : undefined)
  }
}

/** The pool as Kysely sees it: connections that track their transactions and report failures. */
export function trackedPool (pool: pg.Pool, observer: ConnectionObserver): PostgresPool {
  const tracked = new WeakMap<pg.PoolClient, TrackedClient>()
  return {
    async connect () {
      let client: pg.PoolClient
      try {
        client = await pool.connect()
      } catch (err) {
        if (databaseUnavailable(err)) observer.failed(err)
        throw err
      }
      let wrapper = tracked.get(client)
      if (wrapper === undefined) {
        wrapper = new TrackedClient(client, observer)
        tracked.set(client, wrapper)
      }
      return wrapper.checkedOut()
    },
    // @fastify/postgres owns the pool and ends it on close.
    async end () {}
  }
}
