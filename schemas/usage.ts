import { Type, type Static } from '@sinclair/typebox'
import { DateTime, DecimalString, Nullable } from './common.js'

export const UsageGroupBy = Type.Union([Type.Literal('model'), Type.Literal('day'), Type.Literal('provider')])
export type UsageGroupByValue = Static<typeof UsageGroupBy>

export const UsageQuery = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Start, inclusive (default: 30 days before to)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'End, exclusive (default: now)' })),
  group_by: Type.Optional({ ...UsageGroupBy, default: 'model', description: 'model (default), day (UTC) or provider' })
}, { additionalProperties: false })

const usageFields = {
  requests: Type.Integer({ description: 'Usage events (LLM calls)' }),
  input_tokens: Type.Integer(),
  output_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
  cost_usd: { ...DecimalString, description: 'Exact sum of the costs LiteLLM reported, in USD' }
}

export const UsageTotals = Type.Object(usageFields)

export const UsageGroup = Type.Object({
  key: Type.String({ description: 'The model, the provider, or the day (YYYY-MM-DD, UTC)' }),
  ...usageFields
})
export type UsageGroupBody = Static<typeof UsageGroup>

export const UsageResponse = Type.Object({
  customer_external_id: Type.String(),
  from: DateTime,
  to: DateTime,
  group_by: UsageGroupBy,
  totals: UsageTotals,
  groups: Type.Array(UsageGroup)
}, { description: 'Usage from the events this service stored (failed calls excluded), whether or not Lago has them yet' })
export type UsageResponseBody = Static<typeof UsageResponse>

export const CurrentUsageQuery = Type.Object({
  subscription_external_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Default: the customer\'s subscription known to this service, else its active one in Lago' }))
}, { additionalProperties: false })

const UnitsCount = { units: { ...DecimalString, description: 'Aggregated units, exact' }, events_count: Type.Integer(), amount_cents: Type.Integer() }

export const CurrentUsage = Type.Object({
  customer_external_id: Type.String(),
  subscription_external_id: Type.String(),
  from_datetime: DateTime,
  to_datetime: DateTime,
  issuing_date: Type.String({ format: 'date' }),
  currency: Nullable(Type.String()),
  amount_cents: Type.Integer(),
  taxes_amount_cents: Type.Integer(),
  total_amount_cents: Type.Integer(),
  charges: Type.Array(Type.Object({
    billable_metric_code: Type.String(),
    billable_metric_name: Type.String(),
    aggregation_type: Type.String(),
    charge_model: Type.String(),
    ...UnitsCount,
    groups: Type.Array(Type.Object({
      values: Type.Record(Type.String(), Type.String(), { description: 'Grouping property → value (pricing_group_keys)' }),
      ...UnitsCount
    }))
  }))
}, { description: 'The open billing period as Lago computes it: what its next invoice will say so far' })
export type CurrentUsageBody = Static<typeof CurrentUsage>
