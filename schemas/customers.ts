import { Type, type Static } from '@sinclair/typebox'
import { DateTime, Nullable, PageMeta, PaginationQuery } from './common.js'

export const CustomerExternalId = Type.String({ minLength: 1, maxLength: 255, description: 'Your id for the customer: Lago\'s external_id, LiteLLM\'s customer_id' })
const Name = Type.String({ maxLength: 255 })
const Email = Type.String({ maxLength: 255, description: 'Billing email (several separated by commas); Lago checks the format' })
const Currency = Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code; set by the first subscription when absent' })
const PlanCode = Type.String({
  minLength: 1,
  maxLength: 255,
  description: 'Subscribe the customer to this plan (the subscription\'s external_id is the customer\'s external_id, where ' +
    'usage events go). Another plan than the current one changes the plan: an upgrade at once, a downgrade at the end of the period'
})

export const CustomerParams = Type.Object({ external_id: CustomerExternalId })

export const CustomerCreate = Type.Object({
  external_id: CustomerExternalId,
  name: Type.Optional(Name),
  email: Type.Optional(Email),
  currency: Type.Optional(Currency),
  plan_code: Type.Optional(PlanCode)
}, { additionalProperties: false, description: 'Creates the customer, or updates the fields sent when it exists' })
export type CustomerCreateBody = Static<typeof CustomerCreate>

export const CustomerUpdate = Type.Object({
  name: Type.Optional(Name),
  email: Type.Optional(Email),
  currency: Type.Optional(Currency),
  plan_code: Type.Optional(PlanCode)
}, { additionalProperties: false, minProperties: 1, description: 'Only the fields sent change' })
export type CustomerUpdateBody = Static<typeof CustomerUpdate>

export const SubscriptionStatus = Type.Union(['active', 'pending', 'terminated', 'canceled', 'incomplete'].map((s) => Type.Literal(s)))

export const Subscription = Type.Object({
  external_id: Type.String({ description: 'Where the customer\'s usage events go (external_subscription_id)' }),
  plan_code: Type.String(),
  status: SubscriptionStatus,
  started_at: Nullable(DateTime),
  current_billing_period_started_at: Nullable(DateTime),
  current_billing_period_ending_at: Nullable(DateTime),
  next_plan_code: Nullable(Type.String({ description: 'A downgrade waiting for the end of the period' })),
  downgrade_plan_date: Nullable(Type.String({ format: 'date' }))
})
export type SubscriptionBody = Static<typeof Subscription>

const CustomerFields = {
  external_id: Type.String(),
  lago_id: Type.String({ format: 'uuid' }),
  name: Nullable(Type.String()),
  email: Nullable(Type.String()),
  currency: Nullable(Type.String()),
  created_at: DateTime
}

export const CustomerSummary = Type.Object(CustomerFields, { description: 'A customer (GET /api/customers/{external_id} adds its subscription)' })
export type CustomerSummaryBody = Static<typeof CustomerSummary>

export const Customer = Type.Object({
  ...CustomerFields,
  subscription: Nullable(Subscription)
}, { description: 'A customer with its current subscription (active, or pending when it starts later)' })
export type CustomerBody = Static<typeof Customer>

export const CustomerListQuery = Type.Object({
  ...PaginationQuery,
  search: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Part of the external_id, name or email' }))
}, { additionalProperties: false })

export const CustomerList = Type.Object({ customers: Type.Array(CustomerSummary), meta: PageMeta })
export type CustomerListBody = Static<typeof CustomerList>
