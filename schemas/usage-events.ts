import { Type, type Static } from '@sinclair/typebox'
import { NonNegativeInteger } from './common.js'
import { ReconciliationState } from './litellm.js'
import { OrganizationForwarding } from './health.js'

const MAX_UNIX_SECONDS = 1e11 // year 5138: anything larger is almost certainly milliseconds

/**
 * One usage event in the seed's flat format (README: POST /webhooks/litellm). Unknown fields are tolerated
 * (producers add fields) but not stored; counts and costs are never coerced from strings.
 */
export const LiteLLMUsageEvent = Type.Object({
  event_type: Type.Optional(Type.String({ minLength: 1, maxLength: 64, default: 'usage', description: 'Kind of event; "usage" for a model call' })),
  timestamp: Type.Optional(Type.Union([
    Type.Number({ minimum: 0, maximum: MAX_UNIX_SECONDS, description: 'Unix seconds (fractions allowed)' }),
    Type.String({ format: 'date-time', description: 'ISO-8601 / RFC 3339 with a time zone' })
  ], { description: 'When the call happened; the time of receipt when absent' })),
  customer_id: Type.String({ minLength: 1, maxLength: 255, description: 'External id of the billed customer (Lago external_customer_id)' }),
  model: Type.String({ minLength: 1, maxLength: 255 }),
  provider: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: '"unknown" when absent' })),
  tokens_input: Type.Optional({ ...NonNegativeInteger, default: 0 }),
  tokens_output: Type.Optional({ ...NonNegativeInteger, default: 0 }),
  total_tokens: Type.Optional({ ...NonNegativeInteger, description: 'tokens_input + tokens_output when absent' }),
  cost_usd: Type.Union([
    Type.Number({ minimum: 0 }),
    Type.String({ pattern: '^\\d{1,20}(\\.\\d{1,30})?$', description: 'exact decimal' })
  ], { description: 'Cost in USD: a JSON number or, to avoid floats entirely, a decimal string' }),
  request_id: Type.String({ minLength: 1, maxLength: 255, description: 'Idempotency key: one request_id is billed once' }),
  api_key_hash: Type.Optional(Type.String({ maxLength: 255 })),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown(), {
    description: 'Extra billing attributes (tags, team...). Prompt and response text is dropped, never stored.'
  }))
}, { additionalProperties: true, title: 'LiteLLM usage event' })
export type LiteLLMUsageEventInput = Static<typeof LiteLLMUsageEvent>

export const BatchBody = (maxEvents: number) => Type.Union([
  Type.Array(Type.Unknown(), { maxItems: maxEvents, description: 'Events; each is validated on its own' }),
  Type.Object({ events: Type.Array(Type.Unknown(), { maxItems: maxEvents }) }, { additionalProperties: true })
], { description: `Up to ${maxEvents} usage events, as an array or as { "events": [...] }` })

export const IngestOutcome = Type.Union([Type.Literal('accepted'), Type.Literal('duplicate')])

export const IngestResponse = Type.Object({
  status: IngestOutcome,
  request_id: Type.String(),
  id: Type.Integer({ description: 'Id of the stored usage event' })
})

const FieldError = Type.Object({ field: Type.String(), message: Type.String() })

export const BatchItemResult = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  status: Type.Union([Type.Literal('accepted'), Type.Literal('duplicate'), Type.Literal('conflict'), Type.Literal('rejected')]),
  request_id: Type.Optional(Type.String()),
  id: Type.Optional(Type.Integer()),
  message: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(FieldError))
})

export const BatchResponse = Type.Object({
  accepted: Type.Integer(),
  duplicate: Type.Integer(),
  conflict: Type.Integer(),
  rejected: Type.Integer(),
  results: Type.Array(BatchItemResult, { description: 'One entry per input item, in input order' })
})
export type BatchResponseBody = Static<typeof BatchResponse>

const StatusCounts = Type.Object({
  received: Type.Integer(),
  pending: Type.Integer(),
  failed: Type.Integer(),
  forwarded: Type.Integer(),
  dead: Type.Integer(),
  unmapped: Type.Integer({ description: 'Waiting for a customer (no LiteLLM identity maps to one) or for a Lago subscription for it' }),
  not_billable: Type.Integer({ description: 'Failed LiteLLM calls: stored for the record, never sent to Lago' }),
  lago_error: Type.Integer({ description: 'Lago stored them but reported (event.error / events.errors webhooks) that it cannot bill them; Lago\'s reason is in last_error' })
})
export type StatusCountsBody = Static<typeof StatusCounts>

export const StatsResponse = Type.Object({
  generated_at: Type.String({ format: 'date-time' }),
  totals: StatusCounts,
  last_24h: StatusCounts,
  by_source: Type.Record(Type.String(), StatusCounts),
  oldest_pending_age_seconds: Type.Union([Type.Number(), Type.Null()]),
  events_per_second_last_minute: Type.Number(),
  unmapped_reasons: Type.Array(Type.Object({ reason: Type.String(), events: Type.Integer() }), {
    description: 'Why unmapped events wait (no customer for their LiteLLM identity, or no Lago subscription), most frequent first, among the 1,000 most recent unmapped events'
  }),
  reconciliation: Type.Optional({ ...ReconciliationState, description: 'Reconciliation with LiteLLM\'s spend logs (the default organization\'s LiteLLM)' }),
  reconciliations: Type.Optional(Type.Array(Type.Object({ organization_id: Type.String(), ...ReconciliationState.properties }), {
    description: 'Reconciliation of every organization whose LiteLLM is read (default\'s LITELLM_URL, others\' litellm_url), by organization'
  })),
  organizations: Type.Optional(Type.Array(OrganizationForwarding, { description: 'Forwarding per organization (the caller\'s own only, unless it holds an admin key): forwarder state, since when, backlog' }))
})
export type StatsResponseBody = Static<typeof StatsResponse>
