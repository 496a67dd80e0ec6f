/**
 * A dependency the service cannot start without is missing or refuses: server.ts prints `message` as one line
 * (`DATABASE_URL: cannot connect to 127.0.0.1:5432 (connection refused)`) and exits 1, without a stack trace.
 * `variable` names the setting to look at; messages never contain a secret.
 */
export class StartupError extends Error {
  constructor (readonly variable: string, detail: string, options?: { cause?: unknown }) {
    super(`${variable}: ${detail}`, options)
    this.name = 'StartupError'
  }
}

const SOCKET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  EACCES: 'permission denied',
  ENOENT: 'no such socket'
}

interface Coded { code?: unknown, message?: unknown, errors?: unknown[], cause?: unknown }

/** The first error in the chain (cause, AggregateError members) that carries a code. */
function codedError (err: unknown, depth = 0): Coded | undefined {
  if (typeof err !== 'object' || err === null || depth > 5) return undefined
  const e = err as Coded
  if (typeof e.code === 'string') return e
  for (const inner of e.errors ?? []) {
    const found = codedError(inner, depth + 1)
    if (found !== undefined) return found
  }
  return codedError(e.cause, depth + 1)
}

/** host:port (or the socket directory) of a connection string, without user or password. */
export function databaseTarget (connectionString: string): { where: string, user: string, database: string } {
  try {
    const url = new URL(connectionString)
    const socket = url.searchParams.get('host')
    const host = url.hostname !== '' ? url.hostname : socket ?? 'localhost'
    return {
      where: `${host}:${url.port !== '' ? url.port : '5432'}`,
      user: decodeURIComponent(url.username) || 'postgres',
      database: decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username) || 'postgres'
    }
  } catch {
    return { where: '(unparsable URL)', user: '?', database: '?' }
  }
}

/** One readable line for a PostgreSQL failure at start: what failed, where, for which user; never the password. */
export function databaseStartupError (err: unknown, connectionString: string, variable = 'DATABASE_URL'): StartupError {
  if (err instanceof StartupError) return err
  const { where, user, database } = databaseTarget(connectionString)
  const coded = codedError(err)
  const code = typeof coded?.code === 'string' ? coded.code : undefined
  const pgMessage = typeof coded?.message === 'string' ? coded.message : err instanceof Error ? err.message : String(err)
  const at = (detail: string): StartupError => new StartupError(variable, detail, { cause: err })
  if (code !== undefined && SOCKET_REASONS[code] !== undefined) return at(`cannot connect to ${where} (${SOCKET_REASONS[code]})`)
  if (/timeout exceeded when trying to connect|Connection terminated due to connection timeout/i.test(pgMessage)) {
    return at(`cannot connect to ${where} (no answer in time, see DATABASE_CONNECT_TIMEOUT_MS)`)
  }
  switch (code) {
    case '28P01': return at(`PostgreSQL at ${where} refused the password of user "${user}"`)
    case '28000': return at(`PostgreSQL at ${where} refused user "${user}" (${pgMessage})`)
    case '3D000': return at(`database "${database}" does not exist on ${where} (RUN_MIGRATIONS=true creates it)`)
    case '42501': return at(`user "${user}" lacks a permission on ${where}: ${pgMessage}`)
    case '57P03': return at(`PostgreSQL at ${where} is starting up or shutting down`)
    case '53300': return at(`PostgreSQL at ${where} has no connection slot left (too many connections)`)
  }
  if (/SSL|certificate/i.test(pgMessage)) return at(`TLS with ${where} failed (${pgMessage})`)
  return at(`PostgreSQL at ${where} failed at start: ${pgMessage}`)
}
