/** SQLSTATE classes and socket errors that mean "PostgreSQL is not reachable right now", not "bad query". */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', '57P02', '57P03', // admin_shutdown, crash_shutdown, cannot_connect_now
  '08000', '08001', '08003', '08004', '08006', // connection exceptions
  '53300', // too_many_connections
  '55000' // object_not_in_prerequisite_state: database does not allow connections
])
const UNAVAILABLE_SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])
const UNAVAILABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Connection ended unexpectedly/i

export function databaseUnavailable (err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const { code, message } = err as { code?: unknown, message?: unknown }
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_SOCKET_ERRORS.has(code))) return true
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message)
}

/**
 * Whether a statement that failed because PostgreSQL went away may still have committed: the connection was lost
 * while an autocommit write or a COMMIT was in flight (or its answer on the way). Set by the connection wrapper
 * (db/connections.ts) on the error it rethrows; errors from connecting, or from a statement inside a transaction
 * that never reached COMMIT, left nothing behind.
 */
const OUTCOME_UNKNOWN = Symbol('commit outcome unknown')

export function markOutcomeUnknown (err: unknown): void {
  if (typeof err === 'object' && err !== null) (err as Record<symbol, unknown>)[OUTCOME_UNKNOWN] = true
}

export function commitOutcomeUnknown (err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[OUTCOME_UNKNOWN] === true
}

/** Seconds a client is told to wait (Retry-After) while PostgreSQL is unavailable: a restart takes a few. */
export const DATABASE_RETRY_AFTER_SECONDS = 2

/** The message of a 503 for a PostgreSQL failure: honest about whether anything may have been stored. */
export function databaseUnavailableMessage (err: unknown): string {
  return commitOutcomeUnknown(err)
    ? 'The connection to PostgreSQL was lost while the write was committing: its outcome is unknown. Resending is safe: usage events are idempotent by request_id, so one already stored is answered as a duplicate'
    : 'PostgreSQL is unavailable, nothing was stored: retry later'
}
