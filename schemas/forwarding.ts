import { Type } from '@sinclair/typebox'

export const RetryRequest = Type.Object({
  request_ids: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 10_000, description: 'Only these events' })),
  customer_id: Type.Optional(Type.String({ minLength: 1, description: 'Only this customer\'s events' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Only events that happened at or after this time' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Only events that happened before this time' })),
  statuses: Type.Optional(Type.Array(Type.Union([Type.Literal('failed'), Type.Literal('dead')]), {
    minItems: 1, uniqueItems: true, default: ['failed', 'dead'], description: 'Which events to bring back (default both)'
  }))
}, { additionalProperties: false, description: 'Without filters: every failed and dead event' })

export const RetryResponse = Type.Object({
  retried: Type.Integer({ description: 'Events put back to pending' })
})
