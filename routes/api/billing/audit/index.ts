import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BillingAuditQuery, BillingAuditResponse } from '../../../../schemas/billing-audit.js'
import { BillingAuditNotRunError, errorResponses } from '../../../../schemas/errors.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  // Both routes see only the caller's organization (its API key's, or the one an admin key names).
  fastify.get('/', {
    schema: {
      tags: ['billing'],
      operationId: 'auditBilling',
      summary: 'Billing audit: what was forwarded vs what Lago counts, per customer, this billing period',
      description: 'Runs now, for the caller\'s organization against its own Lago: for each customer\'s subscription, ' +
        'compares the events forwarded for its current billing period (count, tokens, cost) with Lago\'s current usage ' +
        'of the metric (events_count, units), and names likely causes of a difference: events older than the ' +
        'subscription\'s start, events Lago reported as errors, events still pending. Each customer costs two Lago ' +
        'calls: a page polling the audit should read GET /api/billing/audit/last instead.',
      querystring: BillingAuditQuery,
      response: { 200: BillingAuditResponse, ...errorResponses(400, 503) }
    }
  }, async (request) => {
    const { customer_id: customerId, from, to } = request.query
    return await fastify.billingAudit.run(request.organizationId, { customerId, from: from !== undefined ? new Date(from) : undefined, to: to !== undefined ? new Date(to) : undefined })
  })

  fastify.get('/last', {
    schema: {
      tags: ['billing'],
      operationId: 'lastBillingAudit',
      summary: 'The last full billing audit of the caller\'s organization, as stored (no Lago call)',
      description: 'The periodic audit\'s last report (every BILLING_AUDIT_INTERVAL_MS), or a GET /api/billing/audit ' +
        'without filters if that ran later, on the instance that answers. 404 billing_audit_not_run until one has completed.',
      response: { 200: BillingAuditResponse, ...errorResponses(404) }
    }
  }, async (request) => {
    const report = fastify.billingAudit.last(request.organizationId)
    if (report === null) {
      const interval = fastify.config.BILLING_AUDIT_INTERVAL_MS
      throw new BillingAuditNotRunError(request.organizationId, interval === 0
        ? 'the periodic audit is off (BILLING_AUDIT_INTERVAL_MS=0); GET /api/billing/audit runs one now'
        : !(await fastify.billingAudit.covers(request.organizationId))
            ? 'the periodic audit does not cover this organization (it is disabled or has no Lago API key)'
            : `the periodic audit runs every ${interval} ms (BILLING_AUDIT_INTERVAL_MS); GET /api/billing/audit runs one now`)
    }
    return report
  })
}

export default plugin
