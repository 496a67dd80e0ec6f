import type { EventInputObject } from 'lago-javascript-client'
import type { ColumnType, Generated, Insertable } from 'kysely'

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
 * not_billable: a failed LiteLLM call, kept for the record and never sent;
 * lago_error: Lago stored it but reported (event.error / events.errors) that it cannot bill it (reason in last_error).
 */
export type UsageEventStatus = 'pending' | 'failed' | 'forwarded' | 'dead' | 'unmapped' | 'not_billable' | 'lago_error'

type Timestamp = ColumnType<Date, Date | string, Date | string>
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>
/** numeric columns travel as strings so that money is never a float. */
type Decimal = ColumnType<string, string, string>
/** Defaults to `default` on insert (the single-organization setup). */
type OrganizationIdColumn = ColumnType<string, string | undefined, string>

/** The default organization: the single-organization setup (LAGO_API_URL, LAGO_API_KEY), and every row stored before. */
export const DEFAULT_ORGANIZATION_ID = 'default'

export type OrganizationStatus = 'active' | 'disabled'

/**
 * One Lago organization billed by this service. Secrets are AES-256-GCM ciphertexts (plugins/app/organizations/
 * secrets.ts); null defaults mean the service's own setting (LAGO_API_URL, LAGO_METRIC_CODE…).
 */
export interface OrganizationTable {
  /** Lowercase slug: [a-z0-9][a-z0-9_-]{0,62}. */
  id: string
  name: string
  lago_api_url: string | null
  /** Null for `default` (LAGO_API_KEY). */
  lago_api_key_encrypted: string | null
  /** Lago's own id of the organization: routes Lago's webhooks. */
  lago_organization_id: string | null
  lago_webhook_hmac_key_encrypted: string | null
  /** The organization's Standard Webhooks secret for ingestion (whsec_…), encrypted. */
  webhook_secret_encrypted: string | null
  metric_code: string | null
  plan_code: string | null
  auto_provision_customers: boolean | null
  /** LiteLLM identities naming the billed customer, in fallback order. */
  customer_fields: IdentityKind[] | null
  /** Its own LiteLLM, whose spend logs are reconciled into it; null: none (default: LITELLM_URL). */
  litellm_url: ColumnType<string | null, string | null | undefined, string | null>
  /** Its LiteLLM master key, encrypted; null: none (default: LITELLM_MASTER_KEY). */
  litellm_master_key_encrypted: ColumnType<string | null, string | null | undefined, string | null>
  status: ColumnType<OrganizationStatus, OrganizationStatus | undefined, OrganizationStatus>
  created_at: GeneratedTimestamp
  updated_at: GeneratedTimestamp
}

/** An organization's ingestion token: only its SHA-256 is stored. */
export interface IngestionTokenTable {
  id: Generated<number>
  organization_id: string
  token_prefix: string
  token_hash: Buffer
  created_at: GeneratedTimestamp
  revoked_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
}

/** A LiteLLM identity kind that routes a call to an organization (shared ingestion token). */
export type RouteIdentityKind = 'org' | 'team'

/** Calls carrying this LiteLLM org or team id belong to this organization. */
export interface OrganizationRouteTable {
  identity: RouteIdentityKind
  value: string
  organization_id: string
  created_at: GeneratedTimestamp
  updated_at: GeneratedTimestamp
}

/** Who is provisioning a customer's Lago customer and subscription right now (plugins/app/subscriptions). */
export interface ProvisioningClaimTable {
  organization_id: OrganizationIdColumn
  customer_external_id: string
  claim_id: string
  claimed_by: string
  claimed_until: Timestamp
}

export interface UsageEventTable {
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
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
  external_subscription_id: string | null
  /**
   * What Lago receives for this event, frozen at its first send (plugins/app/forwarder/lago-event.ts builds it); while
   * the event is claimed for that send, the body is in its claim (usage_event_claims).
   */
  lago_payload: ColumnType<EventInputObject | null, string | null | undefined, string | null>
  /** LiteLLM's id of the call as its spend logs know it (response id, else call id; cache hits normalized). */
  litellm_id: ColumnType<string | null, string | null | undefined, string | null>
  /** LiteLLM's x-litellm-call-id, when the format carries it. */
  litellm_call_id: ColumnType<string | null, string | null | undefined, string | null>
  /** Known when it was forwarded: Lago will never bill it (e.g. older than the subscription's start). */
  billing_warning: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>
}

export interface CustomerTable {
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
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
  /** From Lago's subscription webhooks (or the billing audit): which subscription, since when. */
  subscription_lago_id: ColumnType<string | null, string | null | undefined, string | null>
  subscription_started_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  /** Lago terminated or canceled the subscription: new events wait as unmapped with this reason. */
  subscription_ended_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  subscription_ended_reason: ColumnType<string | null, string | null | undefined, string | null>
}

export interface DeliveryAttemptTable {
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
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
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
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
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
  identity: IdentityKind
  value: string
  customer_external_id: string
  created_at: GeneratedTimestamp
  updated_at: GeneratedTimestamp
}

/** One spend_tracked alert from LiteLLM: the cost of one customer call, a ledger entry, never billed. */
export interface SpendLedgerTable {
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
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
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
  name: string
  cursor: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  lease_owner: string | null
  lease_until: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  last_run_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  last_success_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  last_error: string | null
  last_counts: ColumnType<Record<string, number> | null, string | null | undefined, string | null>
}

/** A verified webhook from Lago, stored once per X-Lago-Unique-Key. */
export interface LagoWebhookTable {
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
  id: Generated<number>
  unique_key: string
  webhook_type: string
  object_type: string
  /** Lago's own organization id, as the webhook named it. */
  lago_organization_id: string | null
  signature_algo: string
  customer_external_id: string | null
  body: ColumnType<Record<string, unknown>, string, string>
  received_at: GeneratedTimestamp
  processed_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  attempts: Generated<number>
  next_attempt_at: GeneratedTimestamp
  last_error: string | null
}

/** Lago's invoice as its webhooks last described it. */
export interface LagoInvoiceTable {
  /** The organization the row belongs to (organizations.id); rows stored before organizations existed are `default`'s. */
  organization_id: OrganizationIdColumn
  lago_id: string
  customer_external_id: string
  number: string
  issuing_date: string
  payment_due_date: string | null
  status: string
  payment_status: string
  payment_overdue: ColumnType<boolean, boolean | undefined, boolean>
  invoice_type: string
  currency: string | null
  fees_amount_cents: ColumnType<string, number | string, number | string>
  taxes_amount_cents: ColumnType<string, number | string, number | string>
  total_amount_cents: ColumnType<string, number | string, number | string>
  file_url: string | null
  lago_created_at: string
  lago_updated_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  recorded_at: GeneratedTimestamp
}

/** Events per (source, status), kept by triggers on litellm_usage_events, split over shards: sum them. */
export interface UsageEventCountTable {
  organization_id: string
  source: string
  status: UsageEventStatus
  shard: number
  events: ColumnType<string, string | number, string | number>
}

/**
 * The same counts per UTC hour of received_at, for the last 25 hours only (GET /webhooks/stats' last 24 hours): kept
 * by the same triggers, older hours deleted by retention.
 */
export interface UsageEventHourlyCountTable extends UsageEventCountTable {
  hour: ColumnType<Date, Date | string, Date | string>
}

/**
 * The dedupe key of every usage event ever stored: a request_id is unique in its organization for ever, across the
 * monthly partitions of litellm_usage_events (whose own unique keys must hold the month). Kept after retention.
 */
/** A forwarder worker's hold on an unsent event, from its claim to its settle (migration 2100). */
export interface UsageEventClaimTable {
  event_id: number
  /** The event's partition key, so that settling finds it in its own month. */
  received_at: Timestamp
  organization_id: string
  /** Proves ownership when settling: a sequence, so that a claim taken again never reuses one. */
  token: Generated<number>
  worker: string
  lease_expires_at: Timestamp
  /** The subscription and Lago body frozen during the claim; moved into the event when it is settled. */
  external_subscription_id: string | null
  lago_payload: ColumnType<EventInputObject | null, string | null | undefined, string | null>
}

export interface UsageEventKeyTable {
  organization_id: string
  request_id: string
  event_id: ColumnType<number, number | string, number | string>
  /** The billing fingerprint of the stored event: a resend must match it. */
  fingerprint: string
}

export interface Database {
  organizations: OrganizationTable
  ingestion_tokens: IngestionTokenTable
  organization_routes: OrganizationRouteTable
  customer_provisioning_claims: ProvisioningClaimTable
  litellm_usage_events: UsageEventTable
  usage_event_keys: UsageEventKeyTable
  usage_event_claims: UsageEventClaimTable
  usage_event_counts: UsageEventCountTable
  usage_event_hourly_counts: UsageEventHourlyCountTable
  webhook_delivery_logs: DeliveryAttemptTable
  customers: CustomerTable
  api_keys: ApiKeyTable
  customer_mappings: CustomerMappingTable
  litellm_spend_ledger: SpendLedgerTable
  litellm_reconciliation: ReconciliationTable
  lago_webhooks: LagoWebhookTable
  lago_invoices: LagoInvoiceTable
}

export type NewDeliveryAttempt = Insertable<DeliveryAttemptTable>
