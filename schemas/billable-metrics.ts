import { Type, type Static } from '@sinclair/typebox'
import { DateTime, Nullable, PageMeta, PaginationQuery } from './common.js'

const AggregationType = Type.Union(['count_agg', 'sum_agg', 'max_agg', 'unique_count_agg', 'weighted_sum_agg', 'latest_agg'].map((a) => Type.Literal(a)), {
  description: 'count_agg counts events; the others aggregate the event property named by field_name'
})
const MetricCode = Type.String({ minLength: 1, maxLength: 255 })
const MetricFilter = Type.Object({
  key: Type.String({ minLength: 1, maxLength: 255, description: 'Event property, e.g. model' }),
  values: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Its possible values, for per-value prices' })
}, { additionalProperties: false })

export const MetricCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 255 }),
  code: MetricCode,
  aggregation_type: AggregationType,
  field_name: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Required by every aggregation but count_agg, e.g. total_tokens' })),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  recurring: Type.Optional(Type.Boolean({ description: 'The value carries over to the next period (default false)' })),
  filters: Type.Optional(Type.Array(MetricFilter, { maxItems: 50 }))
}, { additionalProperties: false })
export type MetricCreateBody = Static<typeof MetricCreate>

export const MetricParams = Type.Object({ code: MetricCode })

export const Metric = Type.Object({
  lago_id: Type.String({ format: 'uuid' }),
  code: Type.String(),
  name: Type.String(),
  description: Nullable(Type.String()),
  aggregation_type: Type.String(),
  field_name: Nullable(Type.String()),
  recurring: Type.Boolean(),
  filters: Type.Array(Type.Object({ key: Type.String(), values: Type.Array(Type.String()) })),
  created_at: DateTime
})
export type MetricBody = Static<typeof Metric>

export const MetricListQuery = Type.Object(PaginationQuery, { additionalProperties: false })
export const MetricList = Type.Object({ billable_metrics: Type.Array(Metric), meta: PageMeta })
export type MetricListBody = Static<typeof MetricList>
