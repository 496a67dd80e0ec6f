import { Type, type Static } from '@sinclair/typebox'
import { DateTime } from './common.js'

/**
 * The drop-in Lago events endpoints (LiteLLM's `lago` callback posts here when LAGO_API_BASE points at this
 * service). Requests and answers follow Lago's API (POST /api/v1/events, /api/v1/events/batch), errors included.
 */

/** POST /api/v1/events: a Lago event (`{"event":{…}}`), a CloudEvent (OpenMeter callback) or a CloudEvents batch. */
export const CreateEventBody = Type.Union([
  Type.Object({}, { additionalProperties: true }),
  Type.Array(Type.Unknown(), { maxItems: 100 })
], { description: 'Lago: {"event": {transaction_id, external_subscription_id, code, timestamp?, properties}}; CloudEvents 1.0 (has specversion), one or an array' })

export const CreateBatchBody = Type.Object({}, { additionalProperties: true, description: 'Lago: {"events": [event, …]} (at most 100)' })

/** Lago's EventObject, as its events endpoints answer. */
export const LagoEventObject = Type.Object({
  lago_id: Type.String({ description: 'Id of the stored usage event (a UUID derived from it)' }),
  transaction_id: Type.String(),
  lago_customer_id: Type.Null(),
  code: Type.String(),
  timestamp: DateTime,
  precise_total_amount_cents: Type.Union([Type.String(), Type.Null()]),
  properties: Type.Record(Type.String(), Type.Unknown()),
  lago_subscription_id: Type.Null(),
  external_subscription_id: Type.Union([Type.String(), Type.Null()]),
  created_at: DateTime
})
export type LagoEventObjectBody = Static<typeof LagoEventObject>

export const LagoEventResponse = Type.Object({ event: LagoEventObject })
export const LagoBatchResponse = Type.Object({ events: Type.Array(LagoEventObject) })

/** Lago's error bodies: `{status, error}` (400, 401), plus `code` (403–422) and `error_details` (422). */
export const LagoError = Type.Object({
  status: Type.Integer(),
  error: Type.String(),
  code: Type.Optional(Type.String()),
  error_details: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
}, { description: 'Lago error' })
export type LagoErrorBody = Static<typeof LagoError>

export const lagoErrorResponses = <S extends number>(...statuses: S[]): Record<S, typeof LagoError> =>
  Object.fromEntries(statuses.map((s) => [s, LagoError])) as Record<S, typeof LagoError>
