import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { simulateCall, spendLogRow, standardLoggingPayload, type CallSpec, type SimulatedCall } from './calls.js'

export interface LiteLLMSimulatorOptions {
  masterKey?: string
  /**
   * Old LiteLLM builds have no `summarize` parameter on GET /spend/logs: a date range then always answers
   * aggregated spend per day. false simulates them.
   */
  supportsSummarize?: boolean
}

export interface LoggedRequest { method: string, path: string, query: Record<string, string>, status: number }

/** A stored call: what LiteLLM pushed (the payload) and what it wrote to LiteLLM_SpendLogs (the row). */
export interface RecordedCall { call: SimulatedCall, payload: Record<string, unknown>, row: Record<string, unknown> }

/**
 * The part of a LiteLLM proxy a reconciler reads: GET /spend/logs and GET /spend/logs/ui over an in-memory
 * LiteLLM_SpendLogs table, with LiteLLM's parameters, orderings and error bodies (see README: what could and
 * could not be confirmed). Calls are recorded with `record`, which also returns the StandardLoggingPayload
 * LiteLLM would push for them.
 */
export function buildLiteLLMSimulator (options: LiteLLMSimulatorOptions = {}) {
  const masterKey = options.masterKey ?? 'sk-litellm-master'
  const rows: Array<Record<string, unknown>> = []
  const requests: LoggedRequest[] = []
  let failures: Array<{ status: number }> = []
  let outageUntil = 0

  const app: FastifyInstance = Fastify({ logger: false })

  const proxyError = (reply: FastifyReply, status: number, message: string, type: string) =>
    reply.code(status).send({ error: { message, type, param: 'None', code: String(status) } })

  app.addHook('onRequest', async (request, reply) => {
    if (Date.now() < outageUntil || failures.length > 0) {
      const status = failures.shift()?.status ?? 503
      return await proxyError(reply, status, 'simulated LiteLLM failure', 'internal_server_error')
    }
    const auth = request.headers.authorization
    const key = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : request.headers['x-litellm-api-key']
    if (key !== masterKey) {
      return await proxyError(reply, 401, 'Authentication Error, Invalid proxy server token passed. Received API Key = sk-...', 'auth_error')
    }
  })
  app.addHook('onResponse', async (request, reply) => {
    requests.push({ method: request.method, path: request.url.split('?')[0], query: request.query as Record<string, string>, status: reply.statusCode })
  })

  const startOf = (row: Record<string, unknown>): number => Date.parse(String(row.startTime))
  const newestFirst = (a: Record<string, unknown>, b: Record<string, unknown>): number => startOf(b) - startOf(a)

  /** Python's datetime.strptime with a fixed format; null when the text does not match it. */
  const strptime = (value: string, withTime: boolean): number | null => {
    const m = withTime ? /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$/.exec(value) : /^(\d{4}-\d{2}-\d{2})$/.exec(value)
    if (m === null) return null
    const t = Date.parse(`${m[1]}T${withTime ? m[2] : '00:00:00'}Z`)
    return Number.isNaN(t) ? null : t
  }

  // GET /spend/logs: request_id, api_key or user_id filters; with start_date and end_date (YYYY-MM-DD, startTime
  // >= start and <= end at midnight), summarize=true (the default) aggregates per day, summarize=false lists rows
  // newest first. Without dates: every row. No paging.
  app.get('/spend/logs', async (request: FastifyRequest<{ Querystring: Record<string, string> }>, reply) => {
    const q = request.query
    if (q.start_date !== undefined && q.end_date !== undefined) {
      const from = strptime(q.start_date, false)
      const to = strptime(q.end_date, false)
      if (from === null || to === null) return await proxyError(reply, 500, `/spend/logs Error time data '${q.start_date}' does not match format '%Y-%m-%d'`, 'internal_error')
      let matched = rows.filter((r) => startOf(r) >= from && startOf(r) <= to)
      if (q.api_key !== undefined) matched = matched.filter((r) => r.api_key === q.api_key)
      else if (q.request_id !== undefined) matched = matched.filter((r) => r.request_id === q.request_id)
      else if (q.user_id !== undefined) matched = matched.filter((r) => r.user === q.user_id)
      if (options.supportsSummarize !== false && q.summarize === 'false') return [...matched].sort(newestFirst)
      const byDay = new Map<string, { spend: number, users: Record<string, number>, models: Record<string, number> }>()
      for (const r of matched) {
        const day = String(r.startTime).slice(0, 10)
        const d = byDay.get(day) ?? { spend: 0, users: {}, models: {} }
        d.spend += Number(r.spend)
        d.users[String(r.user)] = (d.users[String(r.user)] ?? 0) + Number(r.spend)
        d.models[String(r.model)] = (d.models[String(r.model)] ?? 0) + Number(r.spend)
        byDay.set(day, d)
      }
      return [...byDay.entries()].sort().map(([day, d]) => ({ ...d, startTime: day }))
    }
    if (q.request_id !== undefined) return [rows.find((r) => r.request_id === q.request_id) ?? null]
    if (q.api_key !== undefined) return rows.filter((r) => r.api_key === q.api_key)
    if (q.user_id !== undefined) return rows.filter((r) => r.user === q.user_id)
    return rows
  })

  // GET /spend/logs/ui: start_date and end_date required ("YYYY-MM-DD HH:MM:SS", UTC, both inclusive), page >= 1,
  // page_size 1..100 (default 50), newest first, {data, total, page, page_size, total_pages}.
  app.get('/spend/logs/ui', async (request: FastifyRequest<{ Querystring: Record<string, string> }>, reply) => {
    const q = request.query
    const page = q.page === undefined ? 1 : Number(q.page)
    const pageSize = q.page_size === undefined ? 50 : Number(q.page_size)
    const invalid = [
      ...(!Number.isInteger(page) || page < 1 ? [{ loc: ['query', 'page'], msg: 'Input should be greater than or equal to 1', type: 'greater_than_equal' }] : []),
      ...(!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100 ? [{ loc: ['query', 'page_size'], msg: 'Input should be less than or equal to 100', type: 'less_than_equal' }] : [])
    ]
    if (invalid.length > 0) return await reply.code(422).send({ detail: invalid })
    if (q.start_date === undefined || q.end_date === undefined) return await proxyError(reply, 400, 'Start date and end date are required', 'bad_request')
    const from = strptime(q.start_date, true)
    const to = strptime(q.end_date, true)
    if (from === null || to === null) return await proxyError(reply, 500, `time data '${q.start_date}' does not match format '%Y-%m-%d %H:%M:%S'`, 'internal_server_error')
    let matched = rows.filter((r) => startOf(r) >= from && startOf(r) <= to)
    if (q.api_key !== undefined) matched = matched.filter((r) => r.api_key === q.api_key)
    if (q.user_id !== undefined) matched = matched.filter((r) => r.user === q.user_id)
    if (q.team_id !== undefined) matched = matched.filter((r) => r.team_id === q.team_id)
    if (q.request_id !== undefined) matched = matched.filter((r) => r.request_id === q.request_id)
    if (q.status_filter !== undefined) matched = matched.filter((r) => r.status === q.status_filter)
    matched.sort(newestFirst)
    const total = matched.length
    return { data: matched.slice((page - 1) * pageSize, page * pageSize), total, page, page_size: pageSize, total_pages: Math.ceil(total / pageSize) }
  })

  return {
    app,
    masterKey,
    requests,
    /** The spend-log table, in write order. */
    rows,
    /** A call through the proxy: its spend-log row is written, and the payload LiteLLM would push is returned. */
    record (spec: CallSpec = {}): RecordedCall {
      const call = simulateCall(spec)
      const row = spendLogRow(call)
      rows.push(row)
      return { call, payload: standardLoggingPayload(call), row }
    },
    faults: {
      /** The next `times` requests fail with `status`. */
      failNext (times: number, status = 500) { failures = [...failures, ...Array.from({ length: times }, () => ({ status }))] },
      /** Every request fails (503) for `ms`. */
      outage (ms: number) { outageUntil = Date.now() + ms },
      clear () { failures = []; outageUntil = 0 }
    }
  }
}

export type LiteLLMSimulatorApp = ReturnType<typeof buildLiteLLMSimulator>
