import type { Pool } from 'undici'
import { isoTime } from '../litellm/fields.js'
import { quoteNonFiniteNumbers } from '../../external/json-text.js'

export class LiteLLMApiError extends Error {
  override readonly name = 'LiteLLMApiError'
  constructor (readonly status: number | null, message: string) {
    super(message)
  }
}

export interface SpendLogsClientOptions {
  baseUrl: string
  masterKey: string
  timeoutMs: number
  /** ui: GET /spend/logs/ui (paged); spend_logs: GET /spend/logs?summarize=false (one UTC day per request). */
  api: 'ui' | 'spend_logs'
}

const PAGE_SIZE = 100 // /spend/logs/ui's maximum
const MAX_PAGES = 10_000
const DAY_MS = 86_400_000

/** "YYYY-MM-DD HH:MM:SS" in UTC, as /spend/logs/ui parses it. */
const uiTime = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace('T', ' ')
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

/**
 * Reads LiteLLM's spend logs for a time window, page by page. Windows must lie in the past far enough that
 * LiteLLM writes no more rows into them, so that page numbers stay stable while paging.
 */
export class SpendLogsClient {
  readonly #o: SpendLogsClientOptions
  #pool: Promise<Pool> | undefined
  #closed = false
  readonly #origin: string
  readonly #prefix: string

  constructor (options: SpendLogsClientOptions) {
    this.#o = options
    const url = new URL(options.baseUrl)
    this.#origin = url.origin
    this.#prefix = url.pathname.replace(/\/+$/, '')
  }

  /** The pool, made by the first call: undici is not loaded while the service starts (as in the Lago client). */
  async #connection (): Promise<Pool> {
    this.#pool ??= import('undici').then(async ({ Pool }) => {
      const pool = new Pool(this.#origin, { connections: 2, headersTimeout: this.#o.timeoutMs, bodyTimeout: this.#o.timeoutMs })
      if (this.#closed) await pool.close()
      return pool
    })
    return await this.#pool
  }

  /**
   * Every row whose startTime is in [from, to) (second-aligned bounds for the ui API, whose filters are
   * inclusive to the second: a row exactly on a boundary can come in two windows, which ingestion treats as a
   * duplicate). Calls `onPage` with each page's rows.
   */
  async window (from: number, to: number, onPage: (rows: unknown[]) => Promise<void>): Promise<number> {
    return this.#o.api === 'ui' ? await this.#uiWindow(from, to, onPage) : await this.#dailyWindow(from, to, onPage)
  }

  async #uiWindow (from: number, to: number, onPage: (rows: unknown[]) => Promise<void>): Promise<number> {
    let seen = 0
    for (let page = 1, pages = 1; page <= pages && page <= MAX_PAGES; page++) {
      const body = await this.#get('/spend/logs/ui', { start_date: uiTime(from), end_date: uiTime(to), page: String(page), page_size: String(PAGE_SIZE) })
      if (typeof body !== 'object' || body === null || !Array.isArray((body as { data?: unknown }).data)) {
        throw new LiteLLMApiError(200, 'GET /spend/logs/ui did not answer {data, total_pages}: is LITELLM_URL a LiteLLM proxy? (LITELLM_SPEND_LOGS_API=spend_logs uses /spend/logs instead)')
      }
      const { data, total_pages: totalPages } = body as { data: unknown[], total_pages?: unknown }
      pages = typeof totalPages === 'number' ? totalPages : page
      seen += data.length
      if (data.length > 0) await onPage(data)
      if (data.length < PAGE_SIZE) break
    }
    return seen
  }

  /** /spend/logs takes whole UTC days and has no paging: one request per day, rows outside the window dropped. */
  async #dailyWindow (from: number, to: number, onPage: (rows: unknown[]) => Promise<void>): Promise<number> {
    let seen = 0
    for (let d = Math.floor(from / DAY_MS) * DAY_MS; d < to; d += DAY_MS) {
      const body = await this.#get('/spend/logs', { start_date: day(d), end_date: day(d + DAY_MS), summarize: 'false' })
      if (!Array.isArray(body)) throw new LiteLLMApiError(200, 'GET /spend/logs did not answer a list of spend logs')
      if (body.length > 0 && typeof body[0] === 'object' && body[0] !== null && !('request_id' in body[0])) {
        throw new LiteLLMApiError(200, 'GET /spend/logs answered aggregated spend (this LiteLLM version ignores summarize=false): set LITELLM_SPEND_LOGS_API=ui')
      }
      // isoTime, as readSpendLog reads it: zone-less times are UTC (Date.parse would read them as local time).
      const rows = body.filter((r) => {
        const t = typeof r === 'object' && r !== null ? isoTime((r as { startTime?: unknown }).startTime)?.getTime() ?? NaN : NaN
        return t >= from && t < to
      })
      seen += rows.length
      if (rows.length > 0) await onPage(rows)
    }
    return seen
  }

  async #get (path: string, query: Record<string, string>): Promise<unknown> {
    let res
    try {
      res = await (await this.#connection()).request({
        method: 'GET',
        path: `${this.#prefix}${path}?${new URLSearchParams(query).toString()}`,
        headers: { authorization: `Bearer ${this.#o.masterKey}`, accept: 'application/json' }
      })
    } catch (err) {
      throw new LiteLLMApiError(null, `LiteLLM unreachable (GET ${path}): ${err instanceof Error ? err.message : String(err)}`)
    }
    const text = await res.body.text()
    if (res.statusCode !== 200) {
      const hint = res.statusCode === 401 || res.statusCode === 403 ? ': check LITELLM_MASTER_KEY (it needs to read spend logs)' : ''
      throw new LiteLLMApiError(res.statusCode, `LiteLLM answered ${res.statusCode} to GET ${path}${hint}: ${text.slice(0, 300)}`)
    }
    for (const candidate of [text, quoteNonFiniteNumbers(text)]) {
      if (candidate === null) continue
      try { return JSON.parse(candidate) } catch { /* next reading, else the error below */ }
    }
    throw new LiteLLMApiError(res.statusCode, `LiteLLM answered GET ${path} with something that is not JSON`)
  }

  async close (): Promise<void> {
    this.#closed = true
    if (this.#pool !== undefined) await (await this.#pool).close()
  }
}
