import { Type } from '@sinclair/typebox'
import { DateTime, DecimalString, Nullable } from './common.js'

export const BillingAuditQuery = Type.Object({
  customer_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Only this customer' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Only customers with usage events at or after this time' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Only customers with usage events before this time' }))
}, { additionalProperties: false })

const Cause = Type.Object({
  cause: Type.Union(['before_subscription_start', 'lago_error', 'still_pending', 'forwarding_in_progress', 'dead_maybe_in_lago', 'unexplained'].map((c) => Type.Literal(c))),
  events: Type.Integer(),
  message: Type.String()
})

export const CustomerAuditBody = Type.Object({
  customer_external_id: Type.String(),
  subscription_external_id: Type.String(),
  period: Nullable(Type.Object({ from: DateTime, to: DateTime }, { description: 'The subscription\'s current billing period (Lago\'s current usage)' })),
  forwarded: Type.Object({
    events: Type.Integer({ description: 'Forwarded events Lago should bill in the period' }),
    total_tokens: DecimalString,
    cost_usd: DecimalString
  }),
  lago: Nullable(Type.Object({ events_count: Type.Integer(), units: DecimalString }, { description: 'Lago\'s current usage of the metric' })),
  status: Type.Union([Type.Literal('ok'), Type.Literal('mismatch'), Type.Literal('error')]),
  causes: Type.Array(Cause, { description: 'Likely causes of a mismatch (still_pending and forwarding_in_progress are informative, never a mismatch alone)' }),
  error: Nullable(Type.String())
})

export const BillingAuditResponse = Type.Object({
  organization_id: Type.String({ description: 'The organization audited (the caller\'s), against its own Lago' }),
  generated_at: DateTime,
  metric_code: Type.String(),
  mismatches: Type.Integer(),
  customers: Type.Array(CustomerAuditBody)
})
