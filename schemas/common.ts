import { Type, type TSchema } from '@sinclair/typebox'

export const DateTime = Type.String({ format: 'date-time' })
export const NonNegativeInteger = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
/** Exact decimal as a string: money never travels as a float. */
export const DecimalString = Type.String({ pattern: '^-?\\d+(\\.\\d+)?$', description: 'Exact decimal number, as a string' })

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/** page/per_page of every list (properties of a querystring schema). */
export const PaginationQuery = {
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: 'Page number, from 1' })),
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Items per page, at most 100' }))
}

export const PageMeta = Type.Object({
  page: Type.Integer({ description: 'This page' }),
  per_page: Type.Integer(),
  total_count: Type.Integer({ description: 'Items on all pages' }),
  total_pages: Type.Integer(),
  next_page: Nullable(Type.Integer()),
  prev_page: Nullable(Type.Integer())
}, { description: 'Pagination' })

type SecurityRequirements = Array<Record<string, string[]>>
/** OpenAPI security requirements (schemes declared in plugins/external/swagger.ts). */
export const BEARER_AUTH: SecurityRequirements = [{ bearerAuth: [] }]
/** The ingestion webhooks: a webhook token or a Standard Webhooks signature (either; open when neither is set). */
export const WEBHOOK_AUTH: SecurityRequirements = [{ webhookToken: [] }, { webhookSignature: [] }]
