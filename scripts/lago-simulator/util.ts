import type { PaginationMeta } from 'lago-javascript-client'
import type { PlanInterval } from './model.js'

export type Query = Record<string, string | string[] | undefined>

/** Lago timestamps in answers: ISO-8601 UTC, seconds precision for records ("2022-04-29T08:59:51Z"). */
export const isoSeconds = (ms: number = Date.now()): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')
/** Event timestamps keep milliseconds ("2024-03-14T12:29:00.000Z"). */
export const isoMillis = (ms: number): string => new Date(ms).toISOString()
export const isoDate = (ms: number = Date.now()): string => new Date(ms).toISOString().slice(0, 10)

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
export const isBlank = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'string' && v.trim() === '')
export const strOrNull = (v: unknown): string | null => (typeof v === 'string' || typeof v === 'number') ? String(v) : null

/** A query parameter as a single value (the first when repeated). */
export function one (query: Query, name: string): string | undefined {
  const v = query[name]
  return Array.isArray(v) ? v[0] : v
}

/** A list filter: Lago reads both `name[]=a&name[]=b` and the legacy singular `name=a`. */
export function many (query: Query, ...names: string[]): string[] | undefined {
  const values: string[] = []
  let present = false
  for (const name of names) {
    for (const key of [`${name}[]`, name]) {
      const v = query[key]
      if (v === undefined) continue
      present = true
      values.push(...(Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).filter((s) => s !== ''))
    }
  }
  return present ? values : undefined
}

/** Lago's page/per_page pagination (default 100 per page); zero records give zeros and nulls. */
export function paginate<T> (items: T[], query: Query): { items: T[], meta: PaginationMeta } {
  const perPage = Math.max(1, Number.parseInt(one(query, 'per_page') ?? '100', 10) || 100)
  const page = Math.max(1, Number.parseInt(one(query, 'page') ?? '1', 10) || 1)
  const total = items.length
  if (total === 0) return { items: [], meta: { current_page: 0, next_page: null, prev_page: null, total_pages: 0, total_count: 0 } }
  const totalPages = Math.ceil(total / perPage)
  return {
    items: items.slice((page - 1) * perPage, page * perPage),
    meta: {
      current_page: page,
      next_page: page < totalPages ? page + 1 : null,
      prev_page: page > 1 ? page - 1 : null,
      total_pages: totalPages,
      total_count: total
    }
  }
}

const MONTHS_PER: Record<Exclude<PlanInterval, 'weekly'>, number> = { monthly: 1, quarterly: 3, semiannual: 6, yearly: 12 }

/** The last second of the calendar billing interval containing `nowMs` (Lago's to_datetime). */
export function calendarPeriodEnd (interval: PlanInterval, nowMs: number = Date.now()): number {
  const now = new Date(nowMs)
  if (interval === 'weekly') {
    const daysToMonday = (8 - now.getUTCDay()) % 7 || 7
    return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + daysToMonday) - 1000
  }
  const span = MONTHS_PER[interval]
  const startMonth = Math.floor(now.getUTCMonth() / span) * span
  return Date.UTC(now.getUTCFullYear(), startMonth + span, 1) - 1000
}

/** Plan amounts compared over a year, as Lago decides between upgrade and downgrade. */
export function yearlyAmountCents (interval: PlanInterval, amountCents: number): number {
  return amountCents * (interval === 'weekly' ? 52 : 12 / MONTHS_PER[interval])
}
