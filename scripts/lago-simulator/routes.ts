import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EventRejector, LagoState } from './state.js'
import type { Query } from './util.js'

/** A Lago endpoint: returns the answer body (null for an empty 200) or throws LagoFailure. */
export type LagoHandler = (request: FastifyRequest, reject: EventRejector | undefined) => unknown

type Wrap = (fn: LagoHandler) => (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>

const q = (request: FastifyRequest): Query => request.query as Query
const p = (request: FastifyRequest, name: string): string => (request.params as Record<string, string>)[name]

/** The subset of Lago's API the service uses, with Lago's paths (registered under /api/v1). */
export function registerLagoRoutes (api: FastifyInstance, state: LagoState, handle: Wrap): void {
  api.post('/events', handle((r, reject) => state.createEvent(r.body, reject)))
  api.post('/events/batch', handle((r, reject) => state.createBatchEvents(r.body, reject)))
  api.get('/events', handle((r) => state.listEvents(q(r))))
  api.get('/events/:transaction_id', handle((r) => state.getEvent(p(r, 'transaction_id'))))

  api.post('/customers', handle((r) => state.upsertCustomer(r.body)))
  api.get('/customers', handle((r) => state.listCustomers(q(r))))
  api.get('/customers/:external_customer_id', handle((r) => state.getCustomer(p(r, 'external_customer_id'))))
  api.delete('/customers/:external_customer_id', handle((r) => state.deleteCustomer(p(r, 'external_customer_id'))))
  api.get('/customers/:external_customer_id/current_usage', handle((r) => state.currentUsage(p(r, 'external_customer_id'), q(r))))
  api.get('/customers/:external_customer_id/invoices', handle((r) => state.listInvoices(q(r), p(r, 'external_customer_id'))))

  api.post('/billable_metrics', handle((r) => state.createBillableMetric(r.body)))
  api.get('/billable_metrics', handle((r) => state.listBillableMetrics(q(r))))
  api.get('/billable_metrics/:code', handle((r) => state.getBillableMetric(p(r, 'code'))))
  api.put('/billable_metrics/:code', handle((r) => state.updateBillableMetric(p(r, 'code'), r.body)))
  api.delete('/billable_metrics/:code', handle((r) => state.deleteBillableMetric(p(r, 'code'))))

  api.post('/plans', handle((r) => state.createPlan(r.body)))
  api.get('/plans', handle((r) => state.listPlans(q(r))))
  api.get('/plans/:code', handle((r) => state.getPlan(p(r, 'code'))))
  api.put('/plans/:code', handle((r) => state.updatePlan(p(r, 'code'), r.body)))
  api.delete('/plans/:code', handle((r) => state.deletePlan(p(r, 'code'))))

  api.post('/subscriptions', handle((r) => state.createSubscription(r.body)))
  api.get('/subscriptions', handle((r) => state.listSubscriptions(q(r))))
  api.get('/subscriptions/:external_id', handle((r) => state.getSubscription(p(r, 'external_id'), q(r))))
  api.put('/subscriptions/:external_id', handle((r) => state.updateSubscription(p(r, 'external_id'), r.body, q(r))))
  api.delete('/subscriptions/:external_id', handle((r) => state.terminateSubscription(p(r, 'external_id'), q(r))))

  api.get('/invoices', handle((r) => state.listInvoices(q(r))))
  api.get('/invoices/:lago_id', handle((r) => state.getInvoice(p(r, 'lago_id'))))
  api.post('/invoices/:lago_id/download', handle((r) => state.downloadInvoice(p(r, 'lago_id'))))
}
