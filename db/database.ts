import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely'

/**
 * Where a usage event came from: the endpoint and payload format it arrived through.
 * webhook, webhook_batch: the seed's flat format; lago_callback: LiteLLM's Lago callback (POST /api/v1/events[/batch]);
 * openmeter: LiteLLM's OpenMeter callback (CloudEvents); generic_api: LiteLLM's generic_api logger
 * (StandardLoggingPayload); spend_logs: pulled from LiteLLM's spend logs by the reconciler.
 */
export type UsageEventSource = 'webhook' | 'webhook_batch' | 'lago_callback' | 'openmeter' | 'generic_api' | 'spend_logs'

/**
 * Forwarding state of a usage event.
 * pending: waiting to be sent; failed: a send failed and a retry is scheduled at next_attempt_at;
 * forwarded: Lago has it (processed_at set); dead: given up, kept for inspection and manual retry;
 * unmapped: no Lago customer or subscription to send it to yet (waits, and is sent once there is one);
 * not_billable: a failed LiteLLM call, kept for the record and never sent.
 */
export type UsageEventStatus = 'pending' | 'failed' | 'forwarded' | 'dead' | 'unmapped' | 'not_billable'

type Timestamp = ColumnType<Date, Date | string, Date | string>
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>
/** numeric columns travel as strings so that money is never a float. */
type Decimal = ColumnType<string, string, string>

export interface UsageEventTable {
  id: Generated<number>
  request_id: string
  customer_external_id: string
  model: string
  provider: string
  event_type: string
  tokens_input: number
  tokens_output: number
  total_tokens: number
  cost_usd: Decimal
  api_key_hash: string | null
  timestamp: Timestamp
  received_at: GeneratedTimestamp
  source: string
  /** sha256 of the billing content; tells a harmless resend from a conflicting reuse of request_id. */
  fingerprint: string
  metadata: ColumnType<Record<string, unknown>, string | undefined, string>
  status: ColumnType<UsageEventStatus, UsageEventStatus | undefined, UsageEventStatus>
  attempts: Generated<number>
  next_attempt_at: GeneratedTimestamp
  last_error: ColumnType<unknown, string | null | undefined, string | null>
  processed_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  claim_token: Generated<number>
  claimed_by: string | null
  lease_expires_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  external_subscription_id: string | null
  lago_payload: ColumnType<LagoEventBody | null, string | null | undefined, string | null>
  /** LiteLLM's id of the call as its spend logs know it (response id, else call id; cache hits normalized). */
  litellm_id: ColumnType<string | null, string | null | undefined, string | null>
  /** LiteLLM's x-litellm-call-id, when the format carries it. */
  litellm_call_id: ColumnType<string | null, string | null | undefined, string | null>
}

/** The frozen body of a usage event as Lago receives it (one item of POST /api/v1/events/batch). */
export interface LagoEventBody {
  transaction_id: string
  external_subscription_id: string
  code: string
  timestamp: number
  precise_total_amount_cents: string
  properties: {
    tokens_input: number
    tokens_output: number
    total_tokens: number
    model: string
    provider: string
    cost_usd: string
  }
}

export interface CustomerTable {
  external_id: string
  lago_id: string | null
  name: string | null
  email: string | null
  plan_code: string | null
  subscription_external_id: string | null
  /** 'api' (created through this service's API) or 'forwarder' (auto-provisioned for its first usage event). */
  provisioned_by: ColumnType<string, string | undefined, string>
  created_at: GeneratedTimestamp
  updated_at: GeneratedTimestamp
}

export interface DeliveryAttemptTable {
  id: Generated<number>
  event_type: string
  endpoint: string
  request_count: number
  http_status: number | null
  duration_ms: number
  error: string | null
  worker: string | null
  created_at: GeneratedTimestamp
}

/** A service API key created with `npm run keys -- create <name>`; the key itself is never stored. */
export interface ApiKeyTable {
  id: Generated<number>
  name: string
  /** The first characters of the key, to tell keys apart in listings. */
  key_prefix: string
  /** SHA-256 of the whole key. */
  key_hash: Buffer
  created_at: GeneratedTimestamp
  revoked_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
}

/** A LiteLLM identity kind that can name the billed customer. */
export type IdentityKind = 'end_user' | 'user' | 'team' | 'org' | 'key_alias' | 'key_hash'

/** An explicit mapping: calls carrying this LiteLLM identity bill this Lago customer. */
export interface CustomerMappingTable {
  identity: IdentityKind
  value: string
  customer_external_id: string
  created_at: GeneratedTimestamp
  updated_at: GeneratedTimestamp
}

/** One spend_tracked alert from LiteLLM: the cost of one customer call, a ledger entry, never billed. */
export interface SpendLedgerTable {
  id: Generated<number>
  customer_id: string | null
  spend_usd: Decimal
  api_key_hash: string | null
  key_alias: string | null
  user_id: string | null
  team_id: string | null
  event_group: string | null
  body_sha256: string
  received_at: GeneratedTimestamp
}

/** Progress of reconciliation against LiteLLM's spend logs, and the replica holding the lease to run it. */
export interface ReconciliationTable {
  name: string
  cursor: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  lease_owner: string | null
  lease_until: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  last_run_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  last_success_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  last_error: string | null
  last_counts: ColumnType<Record<string, number> | null, string | null | undefined, string | null>
}

export interface Database {
  litellm_usage_events: UsageEventTable
  webhook_delivery_logs: DeliveryAttemptTable
  customers: CustomerTable
  api_keys: ApiKeyTable
  customer_mappings: CustomerMappingTable
  litellm_spend_ledger: SpendLedgerTable
  litellm_reconciliation: ReconciliationTable
}

export type UsageEventRow = Selectable<UsageEventTable>
export type NewUsageEventRow = Insertable<UsageEventTable>
export type UsageEventUpdate = Updateable<UsageEventTable>
export type DeliveryAttemptRow = Selectable<DeliveryAttemptTable>
export type NewDeliveryAttempt = Insertable<DeliveryAttemptTable>
export type CustomerRow = Selectable<CustomerTable>
export type ApiKeyRow = Selectable<ApiKeyTable>
