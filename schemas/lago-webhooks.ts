import { Type, type Static } from '@sinclair/typebox'
import { DateTime, Nullable, PageMeta, PaginationQuery } from './common.js'

export const LagoWebhookAck = Type.Object({
  status: Type.Union([Type.Literal('stored'), Type.Literal('duplicate')], { description: 'duplicate: this X-Lago-Unique-Key was stored before (a retry)' }),
  id: Type.Integer({ description: 'Id of the stored webhook' })
})

export const LagoWebhookListQuery = Type.Object({
  ...PaginationQuery,
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'webhook_type, or several comma-separated (e.g. alert.triggered,wallet.depleted_ongoing_balance)' })),
  customer_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Only webhooks about this customer' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Received at or after' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Received before' }))
}, { additionalProperties: false })
export type LagoWebhookListQueryString = Static<typeof LagoWebhookListQuery>

export const LagoWebhookRecord = Type.Object({
  id: Type.Integer(),
  unique_key: Type.String({ description: 'X-Lago-Unique-Key' }),
  webhook_type: Type.String(),
  object_type: Type.String(),
  organization_id: Type.String({ description: 'The organization (ours) the webhook was routed to' }),
  lago_organization_id: Nullable(Type.String({ description: 'Lago organization id, as the webhook named it' })),
  signature_algo: Type.String({ description: 'jwt or hmac' }),
  customer_external_id: Nullable(Type.String()),
  received_at: DateTime,
  processed_at: Nullable(Type.String({ format: 'date-time', description: 'When it was acted on; null while waiting' })),
  attempts: Type.Integer(),
  last_error: Nullable(Type.String()),
  body: Type.Record(Type.String(), Type.Unknown(), { description: 'The webhook as Lago sent it' })
})

export const LagoWebhookList = Type.Object({ webhooks: Type.Array(LagoWebhookRecord), meta: PageMeta })
export type LagoWebhookListBody = Static<typeof LagoWebhookList>
