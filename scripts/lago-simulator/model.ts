import type { BillableMetricObject, ChargeModelEnum, ChargeObjectProperties, Currency, PlanObject, SubscriptionObject } from 'lago-javascript-client'

// The simulator's records. Their fields use Lago's names so that serializing is a copy, and the serialized
// objects are checked against lago-javascript-client's types where they are built.

export type AggregationType = BillableMetricObject['aggregation_type']
export type PlanInterval = PlanObject['interval']
export type SubscriptionStatus = SubscriptionObject['status']

export interface MetricRecord {
  lago_id: string
  name: string
  code: string
  description: string | null
  aggregation_type: AggregationType
  field_name: string | null
  recurring: boolean
  expression: string | null
  rounding_function: 'ceil' | 'floor' | 'round' | null
  rounding_precision: number | null
  filters: Array<{ key: string, values: string[] }>
  created_at: string
  deleted: boolean
}

export interface ChargeFilterRecord {
  values: Record<string, string[]>
  properties: ChargeObjectProperties
  invoice_display_name: string | null
}

export interface ChargeRecord {
  lago_id: string
  billable_metric_id: string
  code: string
  charge_model: ChargeModelEnum
  pay_in_advance: boolean
  invoiceable: boolean
  prorated: boolean
  min_amount_cents: number
  invoice_display_name: string | null
  properties: ChargeObjectProperties
  filters: ChargeFilterRecord[]
  created_at: string
}

export interface PlanRecord {
  lago_id: string
  name: string
  code: string
  interval: PlanInterval
  amount_cents: number
  amount_currency: Currency
  pay_in_advance: boolean
  invoice_display_name: string | null
  description: string | null
  trial_period: number
  bill_charges_monthly: boolean | null
  charges: ChargeRecord[]
  metadata: Record<string, string | null> | null
  created_at: string
  deleted: boolean
}

export interface CustomerRecord {
  lago_id: string
  sequential_id: number
  slug: string
  external_id: string
  /** The permitted input fields Lago stored (partial updates write only the keys sent). */
  fields: Record<string, unknown>
  created_at: string
  updated_at: string
  deleted: boolean
}

export interface SubscriptionRecord {
  lago_id: string
  external_id: string
  customer_lago_id: string
  external_customer_id: string
  plan_code: string
  name: string | null
  status: SubscriptionStatus
  billing_time: 'calendar' | 'anniversary'
  subscription_at: string
  started_at: string | null
  ending_at: string | null
  terminated_at: string | null
  canceled_at: string | null
  created_at: string
  previous_plan_code: string | null
  next_plan_code: string | null
  downgrade_plan_date: string | null
  /** Simulator billing periods are closed by a control call: usage counts events from here. */
  period_started_at: string
}

export interface EventRecord {
  lago_id: string
  transaction_id: string
  external_subscription_id: string | null
  code: string
  /** Milliseconds since the epoch (Lago keeps the timestamp to the millisecond in its answers). */
  timestamp_ms: number
  properties: Record<string, unknown>
  precise_total_amount_cents: string | null
  created_at: string
  /** Set once a closed period or a termination invoiced it. */
  invoiced: boolean
}
