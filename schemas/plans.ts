import { Type, type Static } from '@sinclair/typebox'
import { DateTime, Nullable, PageMeta, PaginationQuery } from './common.js'

const PRICE_MESSAGE = 'must be a decimal string such as "0.002" (prices are never JSON numbers: a float cannot hold every price exactly)'

/** A price: a non-negative decimal string, as Lago takes it. A JSON number is refused with a message saying why. */
const Price = (description: string) => Type.String({ pattern: '^\\d{1,20}(\\.\\d{1,20})?$', description, examples: ['0.002'], errorMessage: PRICE_MESSAGE })

const strict = { additionalProperties: false }

const Range = (kind: string) => Type.Object({
  from_value: Type.Integer({ minimum: 0, description: '0 for the first tier, then the previous to_value (or it plus 1)' }),
  to_value: Nullable(Type.Integer({ minimum: 1, description: 'null for the last tier' })),
  per_unit_amount: Price(`Price of each unit in this ${kind} tier`),
  flat_amount: Price(`Flat fee of this ${kind} tier`)
}, strict)

/** Charge properties per charge model, as Lago defines them. */
export const ChargeProperties = {
  standard: Type.Object({
    amount: Price('Price per unit'),
    pricing_group_keys: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Event properties that split the charge into one fee per value (e.g. model)' }))
  }, strict),
  graduated: Type.Object({
    graduated_ranges: Type.Array(Range('graduated'), { minItems: 1, description: 'Tiers from the lowest; each unit is priced by the tier it falls in' })
  }, strict),
  package: Type.Object({
    amount: Price('Price per package'),
    package_size: Type.Integer({ minimum: 1, description: 'Units per package' }),
    free_units: Type.Optional(Type.Integer({ minimum: 0, description: 'Units free of charge per period' }))
  }, strict),
  percentage: Type.Object({
    rate: Price('Percentage of the aggregated amount, e.g. "1.5"'),
    fixed_amount: Type.Optional(Price('Fee per event')),
    free_units_per_events: Type.Optional(Type.Integer({ minimum: 0, description: 'Events free of charge' })),
    free_units_per_total_aggregation: Type.Optional(Price('Amount free of charge')),
    per_transaction_min_amount: Type.Optional(Price('Lowest fee per event')),
    per_transaction_max_amount: Type.Optional(Price('Highest fee per event'))
  }, strict),
  volume: Type.Object({
    volume_ranges: Type.Array(Range('volume'), { minItems: 1, description: 'Tiers from the lowest; every unit is priced by the tier the total falls in' })
  }, strict),
  dynamic: Type.Object({}, { ...strict, description: 'No price: each event carries its amount (the exact cost LiteLLM reported)' })
}
export type ChargeModel = keyof typeof ChargeProperties
export const CHARGE_MODELS = Object.keys(ChargeProperties) as ChargeModel[]

const chargeOf = <M extends ChargeModel>(model: M, properties: (typeof ChargeProperties)[M]) => Type.Object({
  id: Type.Optional(Type.String({ description: 'PUT only: the charge to update (from GET); charges without id are created, omitted ones removed' })),
  billable_metric_id: Type.String({ minLength: 1, maxLength: 255, description: 'The billable metric: its lago_id (a UUID) or its code' }),
  charge_model: Type.Literal(model),
  properties: model === 'dynamic' ? Type.Optional(properties) : properties,
  filters: Type.Optional(Type.Array(Type.Object({
    values: Type.Record(Type.String(), Type.Array(Type.String(), { minItems: 1 }), { description: 'Metric filter key → values, e.g. {"model": ["gpt-4o"]}' }),
    properties,
    invoice_display_name: Type.Optional(Type.String({ maxLength: 255 }))
  }, strict), { description: 'Other prices for events whose properties match (e.g. a price per model)' })),
  invoice_display_name: Type.Optional(Type.String({ maxLength: 255 })),
  pay_in_advance: Type.Optional(Type.Boolean()),
  invoiceable: Type.Optional(Type.Boolean()),
  min_amount_cents: Type.Optional(Type.Integer({ minimum: 0 }))
}, strict)

const chargeBranches = CHARGE_MODELS.map((model) => chargeOf(model, ChargeProperties[model]))
const ChargeUnion = Type.Union(chargeBranches) // eslint-disable-line @typescript-eslint/no-unused-vars -- only its type is used

/**
 * One charge of a plan, told apart by charge_model: a tagged oneOf, so that a wrong price is reported against
 * the properties of the model named rather than against every model's.
 */
export const ChargeInput = Type.Unsafe<Static<typeof ChargeUnion>>({
  oneOf: chargeBranches,
  discriminator: { propertyName: 'charge_model' },
  errorMessage: `charge_model must be one of ${CHARGE_MODELS.join(', ')}`,
  description: 'A usage charge'
})
export type ChargeInputBody = Static<typeof ChargeUnion>

const Interval = Type.Union(['weekly', 'monthly', 'quarterly', 'semiannual', 'yearly'].map((i) => Type.Literal(i)))
const PlanCode = Type.String({ minLength: 1, maxLength: 255 })

const planFields = {
  name: Type.String({ minLength: 1, maxLength: 255 }),
  interval: Interval,
  amount_cents: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Subscription fee per interval, in cents' }),
  amount_currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code' }),
  pay_in_advance: Type.Optional(Type.Boolean({ description: 'Subscription fee billed at the start of the interval (default false)' })),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  invoice_display_name: Type.Optional(Type.String({ maxLength: 255 })),
  trial_period: Type.Optional(Type.Number({ minimum: 0, description: 'Free days at the start of a subscription' })),
  charges: Type.Optional(Type.Array(ChargeInput, { maxItems: 100 }))
}

export const PlanCreate = Type.Object({ code: PlanCode, ...planFields }, { ...strict, description: 'A plan (the seed README\'s body is one)' })
export type PlanCreateBody = Static<typeof PlanCreate>

export const PlanUpdate = Type.Partial(Type.Object(planFields), {
  ...strict,
  minProperties: 1,
  description: 'Only the fields sent change; charges, when sent, replace the plan\'s charges. Lago changes only name, ' +
    'description, invoice_display_name and amount_cents of a plan that has subscriptions.'
})
export type PlanUpdateBody = Static<typeof PlanUpdate>

export const PlanParams = Type.Object({ code: PlanCode })

const AnyProperties = Type.Record(Type.String(), Type.Unknown(), { description: 'As Lago stores them; prices are decimal strings' })

export const Charge = Type.Object({
  id: Type.String({ description: 'Lago\'s id of the charge' }),
  code: Nullable(Type.String()),
  billable_metric_id: Type.String(),
  billable_metric_code: Type.String(),
  charge_model: Type.String(),
  invoice_display_name: Nullable(Type.String()),
  pay_in_advance: Type.Boolean(),
  invoiceable: Type.Boolean(),
  min_amount_cents: Type.Integer(),
  properties: AnyProperties,
  filters: Type.Array(Type.Object({
    values: Type.Record(Type.String(), Type.Array(Type.String())),
    properties: AnyProperties,
    invoice_display_name: Nullable(Type.String())
  }))
})
export type ChargeBody = Static<typeof Charge>

export const Plan = Type.Object({
  lago_id: Type.String({ format: 'uuid' }),
  code: Type.String(),
  name: Type.String(),
  description: Nullable(Type.String()),
  invoice_display_name: Nullable(Type.String()),
  interval: Type.String(),
  amount_cents: Type.Integer(),
  amount_currency: Type.String(),
  pay_in_advance: Type.Boolean(),
  trial_period: Nullable(Type.Number()),
  created_at: DateTime,
  charges: Type.Array(Charge)
})
export type PlanBody = Static<typeof Plan>

export const PlanListQuery = Type.Object(PaginationQuery, strict)
export const PlanList = Type.Object({ plans: Type.Array(Plan), meta: PageMeta })
export type PlanListBody = Static<typeof PlanList>
