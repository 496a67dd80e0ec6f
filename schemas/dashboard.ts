import { Type, type Static } from '@sinclair/typebox'
import { DateTime, DecimalString, Nullable } from './common.js'

// The operator's views (GET /api/pipeline, /api/problems, /api/usage, /api/lago/status): what the dashboard shows,
// usable by any API client.

export const ForwarderStateBody = Type.Object({
  status: Type.String({ description: 'running, lago_unavailable, rate_limited, unauthorized, stopped, or disabled' }),
  since: Type.Optional(Type.String({ format: 'date-time', description: 'When it entered this state (this replica)' })),
  reason: Type.Optional(Type.String({ description: 'Why forwarding is disabled' }))
}, { additionalProperties: true })

export const PipelineSource = Type.Object({
  source: Type.String({ description: 'generic_api, lago_callback, openmeter, webhook, webhook_batch, spend_logs (reconciliation)' }),
  received_last_minute: Type.Integer(),
  forwarded_last_minute: Type.Integer(),
  backlog: Type.Integer({ description: 'Pending or awaiting a retry' }),
  problems: Type.Integer({ description: 'Dead, failed, unmapped (and any other problem status)' })
})

export const PipelineResponse = Type.Object({
  generated_at: DateTime,
  window_seconds: Type.Integer({ description: 'The window of the rates and the last-minute counts' }),
  received_last_minute: Type.Integer(),
  forwarded_last_minute: Type.Integer(),
  received_per_second: Type.Number(),
  forwarded_per_second: Type.Number(),
  backlog: Type.Integer({ description: 'Events not yet in Lago (pending or awaiting a retry)' }),
  oldest_pending_age_seconds: Nullable(Type.Number()),
  forwarder: ForwarderStateBody,
  sources: Type.Array(PipelineSource, { description: 'Every known source, then any other seen in the window' })
}, { description: 'Live view of ingestion and forwarding' })
export type PipelineResponseBody = Static<typeof PipelineResponse>

export const ProblemGroup = Type.Object({
  status: Type.String({ description: 'dead, failed, unmapped, or another problem status (lago_error)' }),
  kind: Nullable(Type.String({ description: 'last_error.kind: rejected, transient, exhausted, unmapped...' })),
  reason: Type.String({ description: 'last_error.message: the filter POST /webhooks/retry takes as reason' }),
  events: Type.Integer(),
  cost_usd: DecimalString,
  first_received_at: DateTime,
  last_received_at: DateTime,
  sample: Type.Object({
    request_id: Type.String(),
    customer_external_id: Type.String(),
    model: Type.String(),
    source: Type.String(),
    timestamp: DateTime,
    attempts: Type.Integer()
  }, { description: 'The most recent event of the group' })
})

export const UnmappedIdentity = Type.Object({
  organization_id: Type.String({ description: 'The organization of the calls: a mapping in it (X-Organization-Id, admin key) releases them; "unrouted": they need an organization route first' }),
  identity: Nullable(Type.String({ description: 'end_user, user, team, org, key_alias, key_hash; null when the format named a subject without its kind' })),
  value: Type.String(),
  events: Type.Integer(),
  cost_usd: DecimalString,
  last_received_at: DateTime
})

export const ProblemsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Most groups and identities returned' }))
}, { additionalProperties: false })

export const ProblemsResponse = Type.Object({
  generated_at: DateTime,
  total_events: Type.Integer({ description: 'Events in every problem group' }),
  groups: Type.Array(ProblemGroup, { description: 'By status and reason, largest first' }),
  unmapped_identities: Type.Array(UnmappedIdentity, { description: 'LiteLLM identities of calls waiting for a customer mapping, most events first' })
})
export type ProblemsResponseBody = Static<typeof ProblemsResponse>

export const UsageOverviewQuery = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Start, inclusive (default: 30 days before to)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'End, exclusive (default: now)' })),
  top: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'Customers listed by cost' }))
}, { additionalProperties: false })

const usageFields = {
  requests: Type.Integer(),
  total_tokens: Type.Integer(),
  cost_usd: DecimalString
}
const UsageCell = Type.Object({ key: Type.String(), ...usageFields })
export type UsageCellBody = Static<typeof UsageCell>

export const UsageOverviewResponse = Type.Object({
  from: DateTime,
  to: DateTime,
  totals: Type.Object({ ...usageFields, customers: Type.Integer() }),
  customers: Type.Array(UsageCell, { description: 'Top customers by cost (key: customer external_id); their cost_usd equals GET /api/customers/{id}/usage' }),
  models: Type.Array(UsageCell, { description: 'Every model by cost' }),
  days: Type.Array(Type.Object({
    day: Type.String({ format: 'date', description: 'UTC day' }),
    ...usageFields,
    customers: Type.Array(UsageCell, { description: 'The top customers on this day' }),
    models: Type.Array(UsageCell)
  }), { description: 'Day buckets (UTC) with usage, oldest first' })
}, { description: 'Usage of every customer from the stored events (failed calls excluded), exact decimals' })
export type UsageOverviewResponseBody = Static<typeof UsageOverviewResponse>

export const LagoStatusResponse = Type.Object({
  configured: Type.Boolean({ description: 'LAGO_API_URL and LAGO_API_KEY are set' }),
  bootstrap: Type.Object({
    status: Type.String({ description: 'disabled, pending, done, failing' }),
    last_error: Nullable(Type.String()),
    last_attempt_at: Nullable(DateTime),
    done_at: Nullable(DateTime)
  }, { description: 'Billing defaults (metric and plan) ensured at start, on this replica' }),
  forwarder: ForwarderStateBody,
  last_delivery: Nullable(Type.Object({
    at: DateTime,
    endpoint: Type.String(),
    http_status: Nullable(Type.Integer()),
    events: Type.Integer(),
    error: Nullable(Type.String())
  }, { description: 'The last batch of usage events sent to Lago' }))
})
export type LagoStatusResponseBody = Static<typeof LagoStatusResponse>
