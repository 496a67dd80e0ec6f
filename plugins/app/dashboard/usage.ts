import type { Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
import type { UsageCellBody, UsageOverviewResponseBody } from '../../../schemas/dashboard.js'
import { Decimal } from '../lago/decimal.js'
import { usageCells, type UsageCellRow } from './repository.js'

/** Largest cost first; equal costs by key, so the order is stable. */
const byCost = (a: UsageCellBody, b: UsageCellBody): number => Decimal.from(b.cost_usd).cmp(Decimal.from(a.cost_usd)) || a.key.localeCompare(b.key)

const cell = (key: string, r: UsageCellRow): UsageCellBody => ({ key, requests: r.requests, total_tokens: r.total_tokens, cost_usd: r.cost_usd })

/**
 * The usage overview from the grouping-set rows of usageCells: every total is summed by PostgreSQL in numeric,
 * never here. Each day lists the overall top customers (so a chart's series are the same every day).
 */
export function overviewFromCells (from: Date, to: Date, rows: UsageCellRow[], top: number): UsageOverviewResponseBody {
  const total = rows.find((r) => r.day === null && r.customer === null && r.model === null)
  const customers = rows.filter((r) => r.day === null && r.customer !== null).map((r) => cell(r.customer ?? '', r)).sort(byCost)
  const models = rows.filter((r) => r.day === null && r.model !== null).map((r) => cell(r.model ?? '', r)).sort(byCost)
  const topCustomers = new Set(customers.slice(0, top).map((c) => c.key))
  const days = new Map<string, UsageOverviewResponseBody['days'][number]>()
  for (const r of rows.filter((r) => r.day !== null && r.customer === null && r.model === null).sort((a, b) => (a.day ?? '').localeCompare(b.day ?? ''))) {
    days.set(r.day ?? '', { day: r.day ?? '', requests: r.requests, total_tokens: r.total_tokens, cost_usd: r.cost_usd, customers: [], models: [] })
  }
  for (const r of rows) {
    if (r.day === null) continue
    const day = days.get(r.day)
    if (day === undefined) continue
    if (r.customer !== null && topCustomers.has(r.customer)) day.customers.push(cell(r.customer, r))
    if (r.model !== null) day.models.push(cell(r.model, r))
  }
  for (const day of days.values()) {
    day.customers.sort(byCost)
    day.models.sort(byCost)
  }
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    totals: {
      requests: total?.requests ?? 0,
      total_tokens: total?.total_tokens ?? 0,
      cost_usd: total?.cost_usd ?? '0',
      customers: customers.length
    },
    customers: customers.slice(0, top),
    models,
    days: [...days.values()]
  }
}

export async function usageOverview (db: Kysely<Database>, organization: string, from: Date, to: Date, top: number): Promise<UsageOverviewResponseBody> {
  return overviewFromCells(from, to, await usageCells(db, organization, from, to), top)
}
