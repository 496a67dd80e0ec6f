import { Type, type Static } from '@sinclair/typebox'
import { DateTime, DecimalString } from './common.js'

/** Third-party payloads: LiteLLM's own formats, tolerant of anything it may add. */
const LiteLLMObject = Type.Object({}, { additionalProperties: true })

export const GenericBody = (maxPayloads: number) => Type.Union([
  Type.Array(Type.Unknown(), {
    maxItems: maxPayloads,
    description: 'StandardLoggingPayload objects (json_array, or ndjson read as lines), each judged on its own; null elements are skipped'
  }),
  LiteLLMObject
], { description: 'What LiteLLM\'s generic_api logger sends: a JSON array (default), NDJSON lines, or one object (log_format: single)' })

const GenericProblem = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  status: Type.Union([Type.Literal('rejected'), Type.Literal('conflict')]),
  request_id: Type.Optional(Type.String()),
  message: Type.String()
})

export const GenericResponse = Type.Object({
  received: Type.Integer({ description: 'Items in the body, null elements included' }),
  accepted: Type.Integer({ description: 'Calls stored now (billable, failed or waiting for a customer)' }),
  duplicate: Type.Integer({ description: 'Calls already stored (a resend, a double-fired callback, or the same call through another format)' }),
  conflict: Type.Integer({ description: 'Keys already stored with different billing content: the stored call is kept' }),
  rejected: Type.Integer({ description: 'Items that are not LiteLLM payloads, and calls that could not be stored' }),
  skipped: Type.Integer({ description: 'null elements (LiteLLM queues a missing payload as null)' }),
  not_billable: Type.Integer({ description: 'Of the calls stored now: failed calls, kept and never billed' }),
  unmapped: Type.Integer({ description: 'Of the calls stored now: waiting for a customer (see GET /webhooks/stats)' }),
  problems: Type.Array(GenericProblem, { description: 'Rejected and conflicting items, by index' })
})
export type GenericResponseBody = Static<typeof GenericResponse>

export const AlertParams = Type.Object({ secret: Type.String({ description: 'LITELLM_ALERTS_SECRET' }) })

export const AlertResponse = Type.Object({
  status: Type.Union([Type.Literal('recorded'), Type.Literal('ignored')]),
  reason: Type.Optional(Type.String())
}, { description: 'Always 200 for a LiteLLM webhook event: LiteLLM counts nothing else as delivered' })

// ---- customer mappings -------------------------------------------------------------------------------------------

export const IdentityKindSchema = Type.Union([
  Type.Literal('end_user'), Type.Literal('user'), Type.Literal('team'), Type.Literal('org'), Type.Literal('key_alias'), Type.Literal('key_hash')
], { description: 'LiteLLM identity: end_user (request user), user (key\'s internal user), team, org, key_alias, key_hash (sha256 of the virtual key)' })

const IdentityValue = Type.String({ minLength: 1, maxLength: 255, description: 'The identity as LiteLLM reports it, e.g. a team id' })
const CustomerId = Type.String({ minLength: 1, maxLength: 255, description: 'External id of the Lago customer billed' })

export const CustomerMapping = Type.Object({
  organization_id: Type.String({ description: 'The organization whose calls it applies to' }),
  identity: IdentityKindSchema,
  value: IdentityValue,
  customer_id: CustomerId,
  created_at: DateTime,
  updated_at: DateTime
})

/** A mapping as the API shows it, from its stored row (customer_mappings). */
export function mappingBody (row: { organization_id: string, identity: Static<typeof IdentityKindSchema>, value: string, customer_external_id: string, created_at: Date, updated_at: Date }): Static<typeof CustomerMapping> {
  return { organization_id: row.organization_id, identity: row.identity, value: row.value, customer_id: row.customer_external_id, created_at: row.created_at.toISOString(), updated_at: row.updated_at.toISOString() }
}

export const CustomerMappingInput = Type.Object({
  identity: IdentityKindSchema,
  value: IdentityValue,
  customer_id: CustomerId
}, { additionalProperties: false })

export const CustomerMappingParams = Type.Object({ identity: IdentityKindSchema, value: IdentityValue })

export const CustomerMappingQuery = Type.Object({
  identity: Type.Optional(IdentityKindSchema),
  customer_id: Type.Optional(CustomerId),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  offset: Type.Integer({ minimum: 0, default: 0 })
}, { additionalProperties: false })

export const CustomerMappingList = Type.Object({
  mappings: Type.Array(CustomerMapping),
  total: Type.Integer()
})

export const CustomerMappingSaved = Type.Object({
  mapping: CustomerMapping,
  released_events: Type.Integer({ description: 'Stored calls that were waiting for a customer and are now queued for Lago' })
})

// ---- spend ledger ------------------------------------------------------------------------------------------------

export const SpendLedgerQuery = Type.Object({
  from: Type.Optional(DateTime),
  to: Type.Optional(DateTime),
  customer_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 }))
}, { additionalProperties: false })

export const SpendLedgerResponse = Type.Object({
  customers: Type.Array(Type.Object({
    customer_id: Type.Union([Type.String(), Type.Null()]),
    entries: Type.Integer(),
    spend_usd: DecimalString,
    first_at: DateTime,
    last_at: DateTime
  }))
}, { description: 'LiteLLM\'s spend_tracked alerts per customer: what LiteLLM says each customer spent, to compare with billed usage' })

// ---- reconciliation ----------------------------------------------------------------------------------------------

export const ReconciliationState = Type.Object({
  status: Type.Union([Type.Literal('disabled'), Type.Literal('idle'), Type.Literal('running'), Type.Literal('failing'), Type.Literal('blocked')]),
  reason: Type.Optional(Type.String()),
  cursor: Type.Union([DateTime, Type.Null()], { description: 'Calls that started before this time have been reconciled' }),
  last_run_at: Type.Union([DateTime, Type.Null()]),
  last_success_at: Type.Union([DateTime, Type.Null()]),
  last_error: Type.Union([Type.String(), Type.Null()]),
  last_counts: Type.Union([Type.Record(Type.String(), Type.Integer()), Type.Null()])
})
export type ReconciliationStateBody = Static<typeof ReconciliationState>
