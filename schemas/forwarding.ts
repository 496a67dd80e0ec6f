import { Type } from '@sinclair/typebox'

export const RetryRequest = Type.Object({
  all: Type.Optional(Type.Boolean({ description: 'true to retry every failed and dead event; required when no filter is given' })),
  request_ids: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 10_000, description: 'Only these events' })),
  customer_id: Type.Optional(Type.String({ minLength: 1, description: 'Only this customer\'s events' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Only events that happened at or after this time' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Only events that happened before this time' })),
  reason: Type.Optional(Type.String({ minLength: 1, maxLength: 10_000, description: 'Only events whose last error is exactly this (the reason of a GET /api/problems group)' })),
  statuses: Type.Optional(Type.Array(Type.Union([Type.Literal('failed'), Type.Literal('dead'), Type.Literal('lago_error')]), {
    minItems: 1,
    uniqueItems: true,
    description: 'Which events to bring back (failed and dead when not given); naming statuses is itself a choice of events. lago_error only when asked, once the cause Lago reported is fixed: ' +
      'they are resent verbatim (same transaction_id, subscription and timestamp), so Lago deduplicates them and cannot bill twice'
  }))
}, { additionalProperties: false, description: 'Filters, or {"all": true} for every failed and dead event ("retry all" is never implied by a missing filter)' })

export const RetryResponse = Type.Object({
  retried: Type.Integer({ description: 'Events put back to pending' })
})
