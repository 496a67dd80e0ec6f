import type { ChargeObjectProperties } from 'lago-javascript-client'
import { Decimal } from './decimal.js'
import type { ChargeRecord, EventRecord, MetricRecord } from './model.js'

// Lago's aggregation and charge models (app/services/billable_metrics/aggregations, charge_models), in exact
// decimals. Amounts are in currency units until toCents rounds them half-up to the currency's minor unit, as
// Lago's fee service does.

const ZERO_DECIMAL_CURRENCIES = new Set(['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF'])

export const currencyExponent = (currency: string): number => ZERO_DECIMAL_CURRENCIES.has(currency) ? 0 : 2

export interface Aggregation {
  units: Decimal
  eventsCount: number
  /** Cumulative per-event values in time order (percentage free units use them). */
  runningTotals: Decimal[]
  /** Sum of the events' precise_total_amount_cents (dynamic charges). */
  preciseTotalAmountCents: Decimal
}

/** The numeric value an event carries for a metric: 1 for count_agg, properties[field_name] otherwise. */
export function eventValue (metric: MetricRecord, event: EventRecord): Decimal | null {
  if (metric.aggregation_type === 'count_agg') return Decimal.ONE
  if (metric.field_name === null) return null
  const raw = event.properties[metric.field_name]
  return typeof raw === 'number' || typeof raw === 'string' ? Decimal.parse(raw) : null
}

/** True when Lago would flag the event missing_aggregation_property for this metric. */
export function lacksAggregationProperty (metric: MetricRecord, event: EventRecord): boolean {
  if (metric.aggregation_type === 'count_agg') return false
  if (metric.aggregation_type === 'unique_count_agg') return metric.field_name === null || event.properties[metric.field_name] === undefined
  return eventValue(metric, event) === null
}

function roundUnits (metric: MetricRecord, units: Decimal): Decimal {
  if (metric.rounding_function === null) return units
  const places = metric.rounding_precision ?? 0
  return units.round(places, metric.rounding_function === 'round' ? 'half_up' : metric.rounding_function)
}

export function aggregate (metric: MetricRecord, events: EventRecord[]): Aggregation {
  const ordered = [...events].sort((a, b) => a.timestamp_ms - b.timestamp_ms)
  const runningTotals: Decimal[] = []
  let running = Decimal.ZERO
  let units = Decimal.ZERO
  const unique = new Set<string>()
  let latest: Decimal | null = null
  let max: Decimal | null = null
  let precise = Decimal.ZERO
  for (const event of ordered) {
    if (event.precise_total_amount_cents !== null) precise = precise.plus(Decimal.parse(event.precise_total_amount_cents) ?? Decimal.ZERO)
    if (metric.aggregation_type === 'unique_count_agg') {
      const raw = metric.field_name !== null ? event.properties[metric.field_name] : undefined
      if (raw === undefined || raw === null) continue
      if (event.properties.operation_type === 'remove') unique.delete(String(raw))
      else unique.add(String(raw))
      continue
    }
    const value = eventValue(metric, event)
    if (value === null) continue
    running = running.plus(value)
    runningTotals.push(running)
    latest = value
    max = max === null ? value : Decimal.max(max, value)
  }
  switch (metric.aggregation_type) {
    case 'count_agg': units = Decimal.from(ordered.length); break
    case 'sum_agg': units = running; break
    case 'max_agg': units = max ?? Decimal.ZERO; break
    case 'latest_agg': units = latest ?? Decimal.ZERO; break
    case 'unique_count_agg': units = Decimal.from(unique.size); break
    // weighted_sum_agg is time-weighted over the period; the simulator does not model it.
    default: units = Decimal.ZERO
  }
  return { units: roundUnits(metric, units), eventsCount: ordered.length, runningTotals, preciseTotalAmountCents: precise }
}

const dec = (value: unknown, fallback = Decimal.ZERO): Decimal => Decimal.parse(value) ?? fallback

type Range = { from_value: number, to_value: number | null, flat_amount: string, per_unit_amount: string }

function graduatedAmount (ranges: Range[], units: Decimal): Decimal {
  // Adjacent ranges ([0,10],[10,20]) count (to - from) units per tier; Lago's classic ones ([0,10],[11,20]) count
  // (to - from + 1) above the first tier (RangeGraduatedService).
  const adjacent = ranges.length > 1 && ranges[1].from_value === ranges[0].to_value
  let amount = Decimal.ZERO
  for (const range of ranges) {
    const effective = range.to_value !== null && units.gte(range.to_value) ? Decimal.from(range.to_value) : units
    let tierUnits = range.from_value === 0 ? effective : effective.minus(range.from_value)
    if (range.from_value !== 0 && !adjacent) tierUnits = tierUnits.plus(1)
    if (tierUnits.isNegative()) tierUnits = Decimal.ZERO
    amount = amount.plus(tierUnits.times(dec(range.per_unit_amount)))
    if (!tierUnits.isZero() && !units.isZero()) amount = amount.plus(dec(range.flat_amount))
    if (range.to_value === null || units.lte(range.to_value)) break
  }
  return amount
}

function volumeAmount (ranges: Range[], units: Decimal): Decimal {
  if (units.isZero()) return Decimal.ZERO
  const ceiling = units.round(0, 'ceil')
  const range = [...ranges].sort((a, b) => a.from_value - b.from_value)
    .find((r) => ceiling.gte(r.from_value) && (r.to_value === null || units.lte(r.to_value)))
  if (range === undefined) return Decimal.ZERO
  return units.times(dec(range.per_unit_amount)).plus(dec(range.flat_amount))
}

function percentageAmount (props: ChargeObjectProperties, agg: Aggregation): Decimal {
  const { units, eventsCount } = agg
  const freeEvents = props.free_units_per_events ?? 0
  const freeTotal = dec(props.free_units_per_total_aggregation)
  // Lago computes running totals only when a free-units property is set (PercentageService).
  const totals = freeEvents > 0 || !freeTotal.isZero() ? agg.runningTotals : []
  const last = totals.at(-1) ?? Decimal.ZERO
  let freeUnits = Decimal.ZERO
  if (!last.isZero()) {
    if (freeEvents > 0 && freeEvents < totals.length) freeUnits = totals[freeEvents - 1]
    else if (freeTotal.isZero() || last.lte(freeTotal)) freeUnits = last
    else freeUnits = freeTotal
  }
  const percentage = freeUnits.gt(units) ? Decimal.ZERO : units.minus(freeUnits).times(dec(props.rate)).shift(-2)
  const freeCounts = [freeEvents, totals.filter((t) => t.lt(freeTotal)).length].filter((n) => n > 0)
  const freeEventCount = freeCounts.length > 0 ? Math.min(...freeCounts) : 0
  const fixed = props.fixed_amount === undefined || units.isZero() || freeEventCount >= eventsCount
    ? Decimal.ZERO
    : dec(props.fixed_amount).times(eventsCount - freeEventCount)
  return percentage.plus(fixed)
}

/** The amount, in currency units, of a charge model applied to an aggregation. */
export function chargeAmount (model: ChargeRecord['charge_model'], props: ChargeObjectProperties, agg: Aggregation, currency: string): Decimal {
  const { units } = agg
  switch (model) {
    case 'standard':
      return units.times(dec(props.amount))
    case 'package': {
      const billed = units.minus(props.free_units ?? 0)
      if (billed.isNegative() || billed.isZero()) return Decimal.ZERO
      return billed.ceilDiv(props.package_size ?? 1).times(dec(props.amount))
    }
    case 'graduated':
      return graduatedAmount(props.graduated_ranges ?? [], units)
    case 'volume':
      return volumeAmount(props.volume_ranges ?? [], units)
    case 'percentage':
      return percentageAmount(props, agg)
    case 'dynamic':
      // The events carry their own price in cents (precise_total_amount_cents); Lago bills their sum.
      return units.isZero() ? Decimal.ZERO : agg.preciseTotalAmountCents.shift(-currencyExponent(currency))
    default:
      return Decimal.ZERO
  }
}

/** Lago's fee rounding: the amount rounded half-up to the currency's minor unit, as integer cents. */
export function toCents (amount: Decimal, currency: string): number {
  return amount.shift(currencyExponent(currency)).round(0, 'half_up').toSafeInteger()
}

export interface UsageBucket {
  /** The charge filter's values, or null for events that match no filter (priced by the charge's properties). */
  filterValues: Record<string, string[]> | null
  filterDisplayName: string | null
  /** pricing_group_keys values of this group, or null without grouping. */
  groupedBy: Record<string, string | null> | null
  aggregation: Aggregation
  amount: Decimal
  amountCents: number
}

export interface ChargeUsage {
  charge: ChargeRecord
  metric: MetricRecord
  units: Decimal
  eventsCount: number
  amountCents: number
  amount: Decimal
  buckets: UsageBucket[]
}

const matches = (event: EventRecord, values: Record<string, string[]>): boolean =>
  Object.entries(values).every(([key, allowed]) => {
    const v = event.properties[key]
    return (typeof v === 'string' || typeof v === 'number') && allowed.includes(String(v))
  })

/**
 * Usage of one charge over its events: each event goes to the most specific charge filter it matches (or to the
 * charge's own properties), then into its pricing group; every (filter, group) is priced and rounded on its own
 * like a Lago fee, and the charge's total is their sum.
 */
export function chargeUsage (charge: ChargeRecord, metric: MetricRecord, events: EventRecord[], currency: string): ChargeUsage {
  const byFilter = new Map<number, EventRecord[]>()
  for (const event of events) {
    let best = -1
    charge.filters.forEach((f, i) => {
      if (matches(event, f.values) && (best === -1 || Object.keys(f.values).length > Object.keys(charge.filters[best].values).length)) best = i
    })
    const list = byFilter.get(best) ?? []
    list.push(event)
    byFilter.set(best, list)
  }
  const buckets: UsageBucket[] = []
  const order = [...charge.filters.map((_, i) => i), -1]
  for (const index of order) {
    const filter = index >= 0 ? charge.filters[index] : null
    const bucketEvents = byFilter.get(index) ?? []
    if (filter === null && bucketEvents.length === 0 && charge.filters.length > 0) continue
    const props = filter?.properties ?? charge.properties
    const keys = props.pricing_group_keys ?? props.grouped_by ?? []
    const groups = new Map<string, { groupedBy: Record<string, string | null>, events: EventRecord[] }>()
    if (keys.length === 0) groups.set('', { groupedBy: {}, events: bucketEvents })
    for (const event of keys.length > 0 ? bucketEvents : []) {
      const groupedBy = Object.fromEntries(keys.map((k) => {
        const v = event.properties[k]
        return [k, v === undefined || v === null ? null : String(v)]
      }))
      const id = JSON.stringify(groupedBy)
      const group = groups.get(id) ?? { groupedBy, events: [] }
      group.events.push(event)
      groups.set(id, group)
    }
    for (const group of groups.values()) {
      const aggregation = aggregate(metric, group.events)
      const amount = chargeAmount(charge.charge_model, props, aggregation, currency)
      buckets.push({
        filterValues: filter?.values ?? null,
        filterDisplayName: filter?.invoice_display_name ?? null,
        groupedBy: keys.length > 0 ? group.groupedBy : null,
        aggregation,
        amount,
        amountCents: toCents(amount, currency)
      })
    }
  }
  return {
    charge,
    metric,
    units: Decimal.sum(buckets.map((b) => b.aggregation.units)),
    eventsCount: buckets.reduce((n, b) => n + b.aggregation.eventsCount, 0),
    amountCents: buckets.reduce((n, b) => n + b.amountCents, 0),
    amount: Decimal.sum(buckets.map((b) => b.amount)),
    buckets
  }
}
