import { Type, type Static } from '@sinclair/typebox'
import { DateTime, Nullable } from './common.js'

const IDENTITY = Type.Union([Type.Literal('end_user'), Type.Literal('user'), Type.Literal('team'), Type.Literal('org'), Type.Literal('key_alias'), Type.Literal('key_hash')])
const Url = Type.String({ pattern: '^https?://', maxLength: 2048 })
const Secret = (description: string) => Type.String({ minLength: 1, maxLength: 1024, description })
const Code = Type.String({ minLength: 1, maxLength: 255 })

export const OrganizationId = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'Lowercase slug: a-z, 0-9, - and _, at most 63' })
export const OrganizationParams = Type.Object({ id: OrganizationId })

/** How the per-organization views say whose data they show (in their OpenAPI description). */
export const ORGANIZATION_SCOPE = 'Of the caller\'s organization only (an admin key: the one named by X-Organization-Id, ' +
  'default when absent; 404 organization_not_found for an unknown one); other organizations\' data is not in it.'

/** The defaults an organization may set; null: the service's own (LAGO_METRIC_CODE, LAGO_PLAN_CODE, …). */
const defaults = {
  metric_code: Type.Optional(Nullable({ ...Code, description: 'Billable metric of its usage events (null: LAGO_METRIC_CODE)' })),
  plan_code: Type.Optional(Nullable({ ...Code, description: 'Plan of its auto-provisioned customers (null: LAGO_PLAN_CODE)' })),
  auto_provision_customers: Type.Optional(Nullable(Type.Boolean({ description: 'null: AUTO_PROVISION_CUSTOMERS' }))),
  customer_fields: Type.Optional(Nullable(Type.Array(IDENTITY, { minItems: 1, maxItems: 6, uniqueItems: true, description: 'LiteLLM identity naming the customer, in fallback order (null: LITELLM_CUSTOMER_FIELDS)' }))),
  lago_organization_id: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 255, description: 'Lago\'s own id of the organization: routes its webhooks (POST /webhooks/lago)' }))),
  lago_webhook_hmac_key: Type.Optional(Nullable(Secret('Its Lago webhook HMAC key (stored encrypted, never returned)'))),
  litellm_url: Type.Optional(Nullable({ ...Url, description: 'Its own LiteLLM proxy, whose spend logs are reconciled into this organization (with litellm_master_key; null: none)' })),
  litellm_master_key: Type.Optional(Nullable(Secret('Its LiteLLM master key, to read the spend logs (stored encrypted, never returned; null removes it)'))),
  webhook_secret: Type.Optional(Nullable(Type.String({
    pattern: '^(whsec_)?[A-Za-z0-9+/=]{16,}$',
    maxLength: 1024,
    description: 'Its Standard Webhooks secret (whsec_<base64>): a request signed with it is ingested into this organization ' +
      '(stored encrypted, never returned; null removes it)'
  })))
}

export const OrganizationCreate = Type.Object({
  id: OrganizationId,
  name: Type.String({ minLength: 1, maxLength: 255 }),
  lago_api_url: Type.Optional(Nullable({ ...Url, description: 'Its Lago API URL (null: LAGO_API_URL)' })),
  lago_api_key: Secret('Its Lago API key (stored encrypted with ORGANIZATION_SECRETS_KEY, never returned)'),
  ...defaults
}, { additionalProperties: false })
export type OrganizationCreateBody = Static<typeof OrganizationCreate>

export const OrganizationUpdate = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  lago_api_url: Type.Optional(Nullable(Url)),
  status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled')])),
  ...defaults
}, { additionalProperties: false, minProperties: 1 })
export type OrganizationUpdateBody = Static<typeof OrganizationUpdate>

export const LagoKeyRotation = Type.Object({ lago_api_key: Secret('The new Lago API key') }, { additionalProperties: false })

export const Organization = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('disabled')]),
  lago_api_url: Nullable(Type.String({ description: 'null: LAGO_API_URL' })),
  lago_api_key_set: Type.Boolean({ description: 'Whether a Lago API key is stored (the key itself is never returned)' }),
  lago_organization_id: Nullable(Type.String()),
  lago_webhook_hmac_key_set: Type.Boolean(),
  webhook_secret_set: Type.Boolean({ description: 'Whether a Standard Webhooks secret is stored (never returned)' }),
  metric_code: Nullable(Type.String()),
  plan_code: Nullable(Type.String()),
  auto_provision_customers: Nullable(Type.Boolean()),
  customer_fields: Nullable(Type.Array(Type.String())),
  litellm_url: Nullable(Type.String({ description: 'Its own LiteLLM, reconciled into it (null: none; default: LITELLM_URL)' })),
  litellm_master_key_set: Type.Boolean({ description: 'Whether a LiteLLM master key is stored (never returned)' }),
  created_at: DateTime,
  updated_at: DateTime
}, { description: 'An organization: one Lago organization this service bills into' })
export type OrganizationBody = Static<typeof Organization>

export const OrganizationCreated = Type.Object({
  organization: Organization,
  ingestion_token: Type.String({ description: 'Bearer token for its ingestion webhooks; shown this once' }),
  api_key: Type.String({ description: 'Service API key that sees only this organization; shown this once' })
})

export const OrganizationSaved = Type.Object({ organization: Organization })
export const OrganizationDeleted = Type.Object({
  id: Type.String(),
  deleted_rows: Type.Record(Type.String(), Type.Integer(), { description: 'Rows deleted per table' })
})
export const OrganizationList = Type.Object({ organizations: Type.Array(Organization) })
export const IssuedIngestionToken = Type.Object({ ingestion_token: Type.String({ description: 'Shown this once' }), id: Type.Integer({ description: 'Names it to revoke it' }), prefix: Type.String(), created_at: DateTime })
export const IssuedApiKey = Type.Object({ api_key: Type.String({ description: 'Shown this once' }), id: Type.Integer({ description: 'Names it to revoke it' }), name: Type.String(), prefix: Type.String(), created_at: DateTime })

/** An ingestion token or API key as listed: its first characters, never the secret. */
const credentialFields = {
  id: Type.Integer(),
  prefix: Type.String({ description: 'Its first characters, to tell it apart (the secret itself is never shown again)' }),
  created_at: DateTime,
  revoked_at: Nullable({ ...DateTime, description: 'When it was revoked; null: live' })
}
export const IngestionTokenInfo = Type.Object(credentialFields)
export const IngestionTokenList = Type.Object({ ingestion_tokens: Type.Array(IngestionTokenInfo) })
export const IngestionTokenRevoked = Type.Object({ ingestion_token: IngestionTokenInfo })
export const IngestionTokenParams = Type.Object({ id: OrganizationId, token_id: Type.Integer({ minimum: 1, maximum: 9007199254740991 }) })
export const ApiKeyInfo = Type.Object({ ...credentialFields, name: Type.String() })
export const ApiKeyList = Type.Object({ api_keys: Type.Array(ApiKeyInfo) })
export const ApiKeyRevoked = Type.Object({ api_key: ApiKeyInfo })
export const ApiKeyParams = Type.Object({ id: OrganizationId, key_id: Type.Integer({ minimum: 1, maximum: 9007199254740991 }) })

/** A stored credential as the API lists it. */
export function credentialBody (c: { id: number, prefix: string, created_at: Date, revoked_at: Date | null }): Static<typeof IngestionTokenInfo> {
  return { id: c.id, prefix: c.prefix, created_at: c.created_at.toISOString(), revoked_at: c.revoked_at?.toISOString() ?? null }
}
export function apiKeyBody (k: { id: number, name: string, prefix: string, created_at: Date, revoked_at: Date | null }): Static<typeof ApiKeyInfo> {
  return { ...credentialBody(k), name: k.name }
}

export const ApiKeyRequest = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }, { additionalProperties: false })

/** Routing of a shared ingestion token by LiteLLM identity. */
export const OrganizationRouteInput = Type.Object({
  identity: Type.Union([Type.Literal('org'), Type.Literal('team')], { description: 'LiteLLM org id or team id' }),
  value: Type.String({ minLength: 1, maxLength: 255 }),
  organization_id: OrganizationId
}, { additionalProperties: false })
export const OrganizationRoute = Type.Object({
  identity: Type.String(),
  value: Type.String(),
  organization_id: Type.String(),
  created_at: DateTime,
  updated_at: DateTime
})
export const OrganizationRouteSaved = Type.Object({ route: OrganizationRoute, rerouted_events: Type.Integer({ description: 'Waiting unrouted events moved to the organization' }) })
export const OrganizationRouteList = Type.Object({ routes: Type.Array(OrganizationRoute) })

/** What an organization looks like through the API: whether its secrets are set, never the secrets. */
interface OrganizationFacts {
  id: string
  name: string
  status: 'active' | 'disabled'
  lagoApiUrl: string | null
  hasLagoApiKey: boolean
  lagoOrganizationId: string | null
  hasLagoWebhookHmacKey: boolean
  hasWebhookSecret: boolean
  metricCode: string | null
  planCode: string | null
  autoProvisionCustomers: boolean | null
  customerFields: string[] | null
  litellmUrl: string | null
  hasLitellmMasterKey: boolean
  createdAt: Date
  updatedAt: Date
}

export function organizationBody (o: OrganizationFacts): OrganizationBody {
  return {
    id: o.id,
    name: o.name,
    status: o.status,
    lago_api_url: o.lagoApiUrl,
    lago_api_key_set: o.hasLagoApiKey,
    lago_organization_id: o.lagoOrganizationId,
    lago_webhook_hmac_key_set: o.hasLagoWebhookHmacKey,
    webhook_secret_set: o.hasWebhookSecret,
    metric_code: o.metricCode,
    plan_code: o.planCode,
    auto_provision_customers: o.autoProvisionCustomers,
    customer_fields: o.customerFields,
    litellm_url: o.litellmUrl,
    litellm_master_key_set: o.hasLitellmMasterKey,
    created_at: o.createdAt.toISOString(),
    updated_at: o.updatedAt.toISOString()
  }
}

/** The settings a create or update body carries, in the organizations plugin's terms (undefined: not given). */
export function organizationSettings (b: Partial<Pick<OrganizationCreateBody, 'name' | 'lago_api_url' | keyof typeof defaults>>) {
  return {
    name: b.name,
    lagoApiUrl: b.lago_api_url,
    lagoOrganizationId: b.lago_organization_id,
    lagoWebhookHmacKey: b.lago_webhook_hmac_key,
    webhookSecret: b.webhook_secret,
    metricCode: b.metric_code,
    planCode: b.plan_code,
    autoProvisionCustomers: b.auto_provision_customers,
    customerFields: b.customer_fields,
    litellmUrl: b.litellm_url,
    litellmMasterKey: b.litellm_master_key
  }
}

export function routeBody (r: { identity: string, value: string, organization_id: string, created_at: Date, updated_at: Date }): Static<typeof OrganizationRoute> {
  return { identity: r.identity, value: r.value, organization_id: r.organization_id, created_at: r.created_at.toISOString(), updated_at: r.updated_at.toISOString() }
}
