import { randomUUID } from 'node:crypto'
import type { BillableMetricObject, ChargeModelEnum, ChargeObject, ChargeObjectProperties, PlanObject } from 'lago-javascript-client'
import { Decimal } from './decimal.js'
import { Errors } from './errors.js'
import type { AggregationType, ChargeFilterRecord, ChargeRecord, MetricRecord, PlanRecord } from './model.js'
import { isBlank, isObject, isoSeconds } from './util.js'

// Billable metrics and plans: Lago's validation rules (code and NOTES §5–6) and serializers.

export const AGGREGATION_TYPES: readonly AggregationType[] = ['count_agg', 'sum_agg', 'max_agg', 'unique_count_agg', 'weighted_sum_agg', 'latest_agg']
export const CHARGE_MODELS: readonly ChargeModelEnum[] = ['standard', 'graduated', 'package', 'percentage', 'volume', 'graduated_percentage', 'dynamic']
export const PLAN_INTERVALS: readonly PlanRecord['interval'][] = ['weekly', 'monthly', 'quarterly', 'semiannual', 'yearly']

/** Validates a billable metric body (create, or update over `current`) and returns the record to store. */
export function buildMetric (input: Record<string, unknown>, current: MetricRecord | null): MetricRecord {
  const errors = new Errors()
  const merged = { ...current, ...input } as Record<string, unknown>
  if (isBlank(merged.name)) errors.add('name', 'value_is_mandatory')
  if (isBlank(merged.code)) errors.add('code', 'value_is_mandatory')
  const aggregation = merged.aggregation_type
  if (isBlank(aggregation)) errors.add('aggregation_type', 'value_is_mandatory')
  else if (!AGGREGATION_TYPES.includes(aggregation as AggregationType)) errors.add('aggregation_type', 'value_is_invalid')
  const isCount = aggregation === 'count_agg'
  if (!isCount && isBlank(merged.field_name)) errors.add('field_name', 'value_is_mandatory')
  const filters = merged.filters ?? []
  if (!Array.isArray(filters) || !filters.every((f) => isObject(f) && typeof f.key === 'string' && Array.isArray(f.values) && f.values.every((v) => typeof v === 'string'))) {
    errors.add('filters', 'value_is_invalid')
  }
  const rounding = merged.rounding_function
  if (rounding !== undefined && rounding !== null && !['round', 'ceil', 'floor'].includes(rounding as string)) errors.add('rounding_function', 'value_is_invalid')
  errors.throwIfAny()
  return {
    lago_id: current?.lago_id ?? randomUUID(),
    name: String(merged.name),
    code: String(merged.code),
    description: typeof merged.description === 'string' ? merged.description : null,
    aggregation_type: aggregation as AggregationType,
    field_name: isCount ? null : String(merged.field_name),
    recurring: merged.recurring === true,
    expression: typeof merged.expression === 'string' && merged.expression !== '' ? merged.expression : null,
    rounding_function: (rounding as MetricRecord['rounding_function']) ?? null,
    rounding_precision: typeof merged.rounding_precision === 'number' ? merged.rounding_precision : null,
    filters: (filters as MetricRecord['filters']).map((f) => ({ key: f.key, values: [...f.values] })),
    created_at: current?.created_at ?? isoSeconds(),
    deleted: false
  }
}

export function serializeMetric (m: MetricRecord): BillableMetricObject {
  return {
    lago_id: m.lago_id,
    name: m.name,
    code: m.code,
    description: m.description,
    recurring: m.recurring,
    aggregation_type: m.aggregation_type,
    field_name: m.field_name,
    ...(m.expression !== null ? { expression: m.expression } : {}),
    ...(m.rounding_function !== null ? { rounding_function: m.rounding_function } : {}),
    rounding_precision: m.rounding_precision,
    filters: m.filters,
    created_at: m.created_at
  } satisfies BillableMetricObject
}

/** A price property: Lago wants a decimal string; a JSON number is refused with invalid_amount. */
const isAmount = (v: unknown): boolean => typeof v === 'string' && Decimal.parse(v) !== null && !Decimal.from(v).isNegative()
const isNonNegativeInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0

function validateRanges (ranges: unknown, name: 'graduated_ranges' | 'volume_ranges', errors: Errors): void {
  const kind = name === 'graduated_ranges' ? 'graduated' : 'volume'
  if (!Array.isArray(ranges) || ranges.length === 0) {
    errors.add(name, `missing_${kind}_ranges`)
    return
  }
  let previousTo: number | null = null
  ranges.forEach((range, i) => {
    if (!isObject(range)) {
      errors.add(name, `invalid_${kind}_ranges`)
      return
    }
    const from = range.from_value
    const to = range.to_value
    const last = i === ranges.length - 1
    const fromOk = isNonNegativeInt(from) && (i === 0 ? from === 0 : from === previousTo || from === (previousTo ?? 0) + 1)
    const toOk = last ? to === null || to === undefined : isNonNegativeInt(to) && (to as number) > (from as number)
    if (!fromOk || !toOk) errors.add(name, `invalid_${kind}_ranges`)
    if (!isAmount(range.per_unit_amount)) errors.add('per_unit_amount', 'invalid_amount')
    if (!isAmount(range.flat_amount)) errors.add('flat_amount', 'invalid_amount')
    previousTo = typeof to === 'number' ? to : null
  })
}

/** Charge properties per model (Lago's Charges::Validators). */
function validateProperties (model: ChargeModelEnum, props: Record<string, unknown>, metric: MetricRecord, errors: Errors): void {
  switch (model) {
    case 'standard':
      if (!isAmount(props.amount)) errors.add('amount', 'invalid_amount')
      break
    case 'package':
      if (!isAmount(props.amount)) errors.add('amount', 'invalid_amount')
      if (!Number.isInteger(props.package_size) || (props.package_size as number) <= 0) errors.add('package_size', 'invalid_package_size')
      if (props.free_units !== undefined && !isNonNegativeInt(props.free_units)) errors.add('free_units', 'invalid_free_units')
      break
    case 'percentage':
      if (!isAmount(props.rate)) errors.add('rate', 'invalid_rate')
      if (props.fixed_amount !== undefined && props.fixed_amount !== null && !isAmount(props.fixed_amount)) errors.add('fixed_amount', 'invalid_fixed_amount')
      if (props.free_units_per_events != null && !isNonNegativeInt(props.free_units_per_events)) errors.add('free_units_per_events', 'invalid_free_units_per_events')
      if (props.free_units_per_total_aggregation != null && !isAmount(props.free_units_per_total_aggregation)) errors.add('free_units_per_total_aggregation', 'invalid_free_units_per_total_aggregation')
      break
    case 'graduated':
      validateRanges(props.graduated_ranges, 'graduated_ranges', errors)
      break
    case 'volume':
      validateRanges(props.volume_ranges, 'volume_ranges', errors)
      break
    case 'dynamic':
      if (metric.aggregation_type !== 'sum_agg') errors.add('charge_model', 'invalid_aggregation_type_or_charge_model')
      break
    case 'graduated_percentage':
      errors.add('charge_model', 'graduated_percentage_requires_premium_license')
      break
  }
}

export type MetricLookup = (lagoId: string) => MetricRecord | undefined

/**
 * Validates one charge of a plan body. An unknown billable_metric_id is Lago's 404 billable_metric_not_found,
 * reported through `unknownMetric` so that the caller can answer it before any 422.
 */
export function buildCharge (input: unknown, metrics: MetricLookup, errors: Errors, current: ChargeRecord | undefined, takenCodes: Set<string>): ChargeRecord | 'unknown_metric' | null {
  if (!isObject(input)) {
    errors.add('charges', 'value_is_invalid')
    return null
  }
  const metricId = input.billable_metric_id ?? current?.billable_metric_id
  if (typeof metricId !== 'string') {
    errors.add('billable_metric_id', 'value_is_mandatory')
    return null
  }
  const metric = metrics(metricId)
  if (metric === undefined) return 'unknown_metric'
  const model = (input.charge_model ?? current?.charge_model) as ChargeModelEnum | undefined
  if (model === undefined) {
    errors.add('charge_model', 'value_is_mandatory')
    return null
  }
  if (!CHARGE_MODELS.includes(model)) {
    errors.add('charge_model', 'value_is_invalid')
    return null
  }
  const properties = (isObject(input.properties) ? input.properties : current?.properties ?? {}) as Record<string, unknown>
  validateProperties(model, properties, metric, errors)
  const filters: ChargeFilterRecord[] = []
  for (const f of Array.isArray(input.filters) ? input.filters : current?.filters ?? []) {
    if (!isObject(f) || !isObject(f.values)) {
      errors.add('filters', 'value_is_invalid')
      continue
    }
    // Filter values must be among the metric's filter values.
    for (const [key, values] of Object.entries(f.values)) {
      const allowed = metric.filters.find((mf) => mf.key === key)?.values
      if (allowed === undefined || !Array.isArray(values) || !values.every((v) => allowed.includes(v as string))) errors.add('filters', 'invalid_filter_values')
    }
    const fprops = (isObject(f.properties) ? f.properties : {}) as Record<string, unknown>
    validateProperties(model, fprops, metric, errors)
    filters.push({
      values: f.values as Record<string, string[]>,
      properties: fprops as ChargeObjectProperties,
      invoice_display_name: typeof f.invoice_display_name === 'string' ? f.invoice_display_name : null
    })
  }
  let code = typeof input.code === 'string' && input.code !== '' ? input.code : current?.code
  if (code === undefined) {
    code = metric.code
    for (let n = 2; takenCodes.has(code); n++) code = `${metric.code}_${n}`
  } else if (takenCodes.has(code)) {
    errors.add('code', 'value_already_exist')
  }
  takenCodes.add(code)
  return {
    lago_id: current?.lago_id ?? randomUUID(),
    billable_metric_id: metric.lago_id,
    code,
    charge_model: model,
    pay_in_advance: (input.pay_in_advance ?? current?.pay_in_advance) === true,
    invoiceable: (input.invoiceable ?? current?.invoiceable) !== false,
    prorated: (input.prorated ?? current?.prorated) === true,
    min_amount_cents: typeof input.min_amount_cents === 'number' ? input.min_amount_cents : current?.min_amount_cents ?? 0,
    invoice_display_name: typeof input.invoice_display_name === 'string' ? input.invoice_display_name : current?.invoice_display_name ?? null,
    properties: properties as ChargeObjectProperties,
    filters,
    created_at: current?.created_at ?? isoSeconds()
  }
}

export function serializeCharge (c: ChargeRecord, metric: MetricRecord): ChargeObject {
  return {
    lago_id: c.lago_id,
    lago_billable_metric_id: c.billable_metric_id,
    code: c.code,
    billable_metric_code: metric.code,
    invoice_display_name: c.invoice_display_name,
    created_at: c.created_at,
    charge_model: c.charge_model,
    pay_in_advance: c.pay_in_advance,
    invoiceable: c.invoiceable,
    regroup_paid_fees: 'invoice',
    prorated: c.prorated,
    min_amount_cents: c.min_amount_cents,
    properties: c.properties,
    filters: c.filters,
    taxes: []
  } satisfies ChargeObject
}

export function serializePlan (p: PlanRecord, metric: (lagoId: string) => MetricRecord): PlanObject {
  return {
    lago_id: p.lago_id,
    name: p.name,
    ...(p.invoice_display_name !== null ? { invoice_display_name: p.invoice_display_name } : {}),
    created_at: p.created_at,
    code: p.code,
    interval: p.interval,
    ...(p.description !== null ? { description: p.description } : {}),
    amount_cents: p.amount_cents,
    amount_currency: p.amount_currency,
    trial_period: p.trial_period,
    pay_in_advance: p.pay_in_advance,
    bill_charges_monthly: p.bill_charges_monthly,
    charges: p.charges.map((c) => serializeCharge(c, metric(c.billable_metric_id))),
    fixed_charges: [],
    taxes: [],
    usage_thresholds: [],
    metadata: p.metadata
  } satisfies PlanObject
}
