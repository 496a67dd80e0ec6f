// Lago's own generated types (lago-javascript-client), imported as types only: they are the compile-time
// contract of every request body and response the client handles. Nothing of the package runs.
import type {
  Api,
  BillableMetricCreateInput,
  BillableMetricObject,
  BillableMetricUpdateInput,
  BillableMetricsPaginated,
  CustomerCreateInput,
  CustomerObjectExtended,
  CustomerUsageObject,
  CustomersPaginated,
  EventInputObject,
  EventObject,
  EventsPaginated,
  InvoiceObjectExtended,
  InvoicesPaginated,
  PaginationMeta,
  PlanCreateInput,
  PlanObject,
  PlanUpdateInput,
  PlansPaginated,
  SubscriptionCreateInput,
  SubscriptionObject,
  SubscriptionObjectExtended,
  SubscriptionUpdateInput,
  SubscriptionsPaginated
} from 'lago-javascript-client'

export type {
  BillableMetricObject, BillableMetricsPaginated, CustomerObjectExtended, CustomerUsageObject, CustomersPaginated,
  EventInputObject, EventObject, EventsPaginated, InvoiceObjectExtended, InvoicesPaginated, PaginationMeta,
  PlanObject, PlansPaginated, SubscriptionObject, SubscriptionObjectExtended, SubscriptionsPaginated
}

type LagoApi = Api<unknown>
/** The query parameter of a generated method: its first argument, or its second after a path id. */
type QueryOf<F extends (...args: never[]) => unknown, At extends 0 | 1 = 0> = NonNullable<Parameters<F>[At]>

// Request bodies without their root key: the client adds {"customer": …} and the like.
export type CustomerInput = CustomerCreateInput['customer']
export type BillableMetricInput = BillableMetricCreateInput['billable_metric']
export type BillableMetricUpdate = BillableMetricUpdateInput['billable_metric']
export type PlanInput = PlanCreateInput['plan']
export type PlanUpdate = PlanUpdateInput['plan']
export type SubscriptionInput = SubscriptionCreateInput['subscription']
export type SubscriptionUpdate = SubscriptionUpdateInput['subscription']

// Query strings exactly as the generated client declares them (array filters keep their "[]" suffix).
export type CustomerListQuery = QueryOf<LagoApi['customers']['findAllCustomers']>
export type CurrentUsageQuery = Omit<QueryOf<LagoApi['customers']['findCustomerCurrentUsage'], 1>, 'external_subscription_id'>
export type SubscriptionListQuery = QueryOf<LagoApi['subscriptions']['findAllSubscriptions']>
export type SubscriptionGetQuery = QueryOf<LagoApi['subscriptions']['findSubscription'], 1>
export type SubscriptionTerminateQuery = QueryOf<LagoApi['subscriptions']['destroySubscription'], 1>
export type PlanListQuery = QueryOf<LagoApi['plans']['findAllPlans']>
export type BillableMetricListQuery = QueryOf<LagoApi['billableMetrics']['findAllBillableMetrics']>
export type InvoiceListQuery = QueryOf<LagoApi['invoices']['findAllInvoices']>
export type CustomerInvoiceListQuery = QueryOf<LagoApi['customers']['findAllCustomerInvoices'], 1>
export type EventListQuery = QueryOf<LagoApi['events']['findAllEvents']>
