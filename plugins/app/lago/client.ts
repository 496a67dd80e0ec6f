import { performance } from 'node:perf_hooks'
import type { Pool } from 'undici'
import type {
  BillableMetricCreateInput, BillableMetricUpdateInput, CustomerCreateInput, EventBatchInput, EventInput,
  PlanCreateInput, PlanUpdateInput, SubscriptionCreateInput, SubscriptionUpdateInput
} from 'lago-javascript-client'
import type { WebhookEndpoint, WebhookEndpointCreateInput, WebhookEndpointObject, WebhookEndpointsPaginated, WebhookEndpointUpdateInput, WebhookPublicKey } from 'lago-javascript-client'
import { LagoApiError, LagoNotConfiguredError, LagoUnavailableError, type LagoUnavailableKind } from './errors.js'
import { DEFAULT_MAX_RETRY_AFTER_MS, parseRateLimit, parseRetryAfter, type RateLimitHeaders } from './headers.js'
import type {
  BillableMetricInput, BillableMetricListQuery, BillableMetricObject, BillableMetricsPaginated, BillableMetricUpdate,
  CurrentUsageQuery, CustomerInput, CustomerInvoiceListQuery, CustomerListQuery, CustomerObjectExtended,
  CustomersPaginated, CustomerUsageObject, EventInputObject, EventListQuery, EventObject, EventsPaginated,
  InvoiceListQuery, InvoiceObjectExtended, InvoicesPaginated, PlanInput, PlanListQuery, PlanObject, PlansPaginated,
  PlanUpdate, SubscriptionGetQuery, SubscriptionInput, SubscriptionListQuery, SubscriptionObject,
  SubscriptionObjectExtended, SubscriptionsPaginated, SubscriptionTerminateQuery, SubscriptionUpdate
} from './types.js'

/** One HTTP attempt, as reported to observers (the forwarder logs one delivery row per attempt). */
export interface LagoAttempt {
  /** The Lago operation, stable for metrics: createBatchEvents, findCustomer… (the generated client's names). */
  operation: string
  method: string
  /** Path and query as sent, e.g. /api/v1/events/batch. */
  path: string
  /** The HTTP status, or null when no response arrived (timeout, refused, dropped). */
  statusCode: number | null
  durationMs: number
  /** Set when the attempt failed: what the call throws. */
  error?: LagoApiError | LagoUnavailableError
  /** Events carried by the request (POST /events: 1, /events/batch: the batch size). */
  eventCount?: number
  rateLimit: RateLimitHeaders | null
}

/** Called once per HTTP attempt, after it settles. Must not throw (a throw is ignored). */
export type LagoObserver = (attempt: LagoAttempt) => void

export interface LagoClientOptions {
  /** Lago's base URL, e.g. http://localhost:3000 (a trailing /api/v1 is accepted and ignored). */
  baseUrl: string
  /** The organization API key; without one every call throws LagoNotConfiguredError. */
  apiKey?: string
  /** Give up waiting for the response headers after this long. Default 10 s. */
  headersTimeoutMs?: number
  /** Upper bound for a whole attempt, connection to last body byte. Default 30 s. */
  requestTimeoutMs?: number
  connectTimeoutMs?: number
  /** Keep-alive connections to Lago. Default 10. */
  connections?: number
  /** Cap on a Retry-After that Lago sends. Default 60 s. */
  maxRetryAfterMs?: number
  observer?: LagoObserver
  userAgent?: string
}

export type WebhookEndpointInput = NonNullable<WebhookEndpointCreateInput['webhook_endpoint']>

export interface CallOptions {
  /** Called for this call's attempt, after the client-wide observer. */
  onAttempt?: LagoObserver
}

type Scalar = string | number | boolean
type Query = Record<string, Scalar | readonly Scalar[] | Readonly<Record<string, Scalar>> | null | undefined>

interface RequestSpec {
  operation: string
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  path: string
  query?: Query
  body?: unknown
  eventCount?: number
  /** Lago answers 200 with an empty body here (invoice download while the PDF is generated). */
  emptyBodyAllowed?: boolean
}

const seg = (id: string): string => encodeURIComponent(id)

function queryString (query: Query | undefined): string {
  if (query === undefined) return ''
  const parts: string[] = []
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue
    // Rails conventions: arrays repeat the key (the generated types already name it "statuses[]"), and
    // hashes become key[sub]=value (current usage's group[model]=gpt-4o).
    const pairs: Array<[string, Scalar]> = Array.isArray(value)
      ? value.map((item): [string, Scalar] => [key, item])
      : typeof value === 'object'
        ? Object.entries(value as Record<string, Scalar>).map(([sub, item]): [string, Scalar] => [`${key}[${sub}]`, item])
        : [[key, value as Scalar]]
    for (const [k, v] of pairs) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
  }
  return parts.length > 0 ? `?${parts.join('&')}` : ''
}

const NETWORK_CODES: Record<string, LagoUnavailableKind> = {
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  ETIMEDOUT: 'timeout',
  ECONNREFUSED: 'connection_refused',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns'
}

function errorCodes (err: unknown): string[] {
  const codes: string[] = []
  const visit = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || depth > 3) return
    const { code, cause, errors } = e as { code?: unknown, cause?: unknown, errors?: unknown }
    if (typeof code === 'string') codes.push(code)
    visit(cause, depth + 1)
    if (Array.isArray(errors)) for (const inner of errors) visit(inner, depth + 1)
  }
  visit(err, 0)
  return codes
}

/** Maps what undici or the socket threw to an unavailability kind. */
function unavailableKind (err: unknown, timedOut: boolean): LagoUnavailableKind {
  if (timedOut) return 'timeout'
  for (const code of errorCodes(err)) {
    const kind = NETWORK_CODES[code]
    if (kind !== undefined) return kind
  }
  return 'network'
}

/**
 * Typed client for the part of Lago's REST API this service uses. One undici Pool (keep-alive) per base URL.
 * It never retries: each method makes exactly one HTTP attempt and either returns Lago's object or throws
 * LagoApiError (Lago answered an error status), LagoUnavailableError (no usable answer) or
 * LagoNotConfiguredError (no API key). Retry policy belongs to the caller; see classifyLagoError.
 */
export class LagoClient {
  readonly baseUrl: string
  private pool: Promise<Pool> | undefined
  private closed = false
  private readonly poolOptions: Pool.Options
  private readonly origin: string
  private readonly prefix: string
  private readonly apiKey: string | undefined
  private readonly headersTimeoutMs: number
  private readonly requestTimeoutMs: number
  private readonly maxRetryAfterMs: number
  private readonly observer: LagoObserver | undefined
  private readonly userAgent: string

  constructor (options: LagoClientOptions) {
    const url = new URL(options.baseUrl)
    // Lago may sit behind a path prefix; keep it, and do not double /api/v1.
    const basePath = url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '')
    this.baseUrl = `${url.origin}${basePath}`
    this.prefix = `${basePath}/api/v1`
    this.apiKey = options.apiKey !== undefined && options.apiKey !== '' ? options.apiKey : undefined
    this.headersTimeoutMs = options.headersTimeoutMs ?? 10_000
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS
    this.observer = options.observer
    this.userAgent = options.userAgent ?? 'lago-api-integration'
    this.origin = url.origin
    this.poolOptions = {
      connections: options.connections ?? 10,
      connect: { timeout: options.connectTimeoutMs ?? 5_000 },
      headersTimeout: this.headersTimeoutMs,
      bodyTimeout: this.requestTimeoutMs,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000
    }
  }

  /** The pool, made by the first call: undici (110 modules, about 25 ms) is not loaded while the service starts. */
  private async connection (): Promise<Pool> {
    this.pool ??= import('undici').then(async ({ Pool }) => {
      const pool = new Pool(this.origin, this.poolOptions)
      // Closed before its first call: a closed pool, as it would have been.
      if (this.closed) await pool.close()
      return pool
    })
    return await this.pool
  }

  /** True when an API key is set, i.e. calls will be sent. */
  get configured (): boolean {
    return this.apiKey !== undefined
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.pool !== undefined) await (await this.pool).close()
  }

  // ---- events --------------------------------------------------------------------------------------------

  /** POST /events: one event. A repeat of a stored transaction_id answers 422 value_already_exist. */
  async createEvent (event: EventInputObject, options?: CallOptions): Promise<EventObject> {
    const body = { event } satisfies EventInput
    return (await this.call<{ event: EventObject }>({ operation: 'createEvent', method: 'POST', path: '/events', body, eventCount: 1 }, options)).event
  }

  /**
   * POST /events/batch: up to 100 events, stored all or nothing. On a 422 nothing was stored;
   * LagoApiError.eventErrors() gives the per-index errors.
   */
  async createBatchEvents (events: EventInputObject[], options?: CallOptions): Promise<EventObject[]> {
    const body = { events } satisfies EventBatchInput
    return (await this.call<{ events: EventObject[] }>({
      operation: 'createBatchEvents', method: 'POST', path: '/events/batch', body, eventCount: events.length
    }, options)).events
  }

  async getEvent (transactionId: string, options?: CallOptions): Promise<EventObject> {
    return (await this.call<{ event: EventObject }>({ operation: 'findEvent', method: 'GET', path: `/events/${seg(transactionId)}` }, options)).event
  }

  async listEvents (query?: EventListQuery, options?: CallOptions): Promise<EventsPaginated> {
    return await this.call<EventsPaginated>({ operation: 'findAllEvents', method: 'GET', path: '/events', query }, options)
  }

  // ---- customers -----------------------------------------------------------------------------------------

  /** POST /customers: creates or updates the customer with this external_id (only the keys sent are written). */
  async upsertCustomer (customer: CustomerInput, options?: CallOptions): Promise<CustomerObjectExtended> {
    const body = { customer } satisfies CustomerCreateInput
    return (await this.call<{ customer: CustomerObjectExtended }>({ operation: 'createCustomer', method: 'POST', path: '/customers', body }, options)).customer
  }

  async getCustomer (externalId: string, options?: CallOptions): Promise<CustomerObjectExtended> {
    return (await this.call<{ customer: CustomerObjectExtended }>({ operation: 'findCustomer', method: 'GET', path: `/customers/${seg(externalId)}` }, options)).customer
  }

  async listCustomers (query?: CustomerListQuery, options?: CallOptions): Promise<CustomersPaginated> {
    return await this.call<CustomersPaginated>({ operation: 'findAllCustomers', method: 'GET', path: '/customers', query }, options)
  }

  /** DELETE /customers/:id: Lago terminates the customer's subscriptions. */
  async deleteCustomer (externalId: string, options?: CallOptions): Promise<CustomerObjectExtended> {
    return (await this.call<{ customer: CustomerObjectExtended }>({ operation: 'destroyCustomer', method: 'DELETE', path: `/customers/${seg(externalId)}` }, options)).customer
  }

  /** GET /customers/:id/current_usage. 405 no_active_subscription when the subscription is not active. */
  async getCurrentUsage (externalCustomerId: string, externalSubscriptionId: string, query?: CurrentUsageQuery, options?: CallOptions): Promise<CustomerUsageObject> {
    return (await this.call<{ customer_usage: CustomerUsageObject }>({
      operation: 'findCustomerCurrentUsage',
      method: 'GET',
      path: `/customers/${seg(externalCustomerId)}/current_usage`,
      query: { ...query, external_subscription_id: externalSubscriptionId }
    }, options)).customer_usage
  }

  async listCustomerInvoices (externalCustomerId: string, query?: CustomerInvoiceListQuery, options?: CallOptions): Promise<InvoicesPaginated> {
    return await this.call<InvoicesPaginated>({ operation: 'findAllCustomerInvoices', method: 'GET', path: `/customers/${seg(externalCustomerId)}/invoices`, query }, options)
  }

  // ---- subscriptions -------------------------------------------------------------------------------------

  /**
   * POST /subscriptions. Creates the customer if unknown; the same external_id and plan again returns the
   * existing subscription; the same external_id with another plan_code is Lago's plan change (upgrade at
   * once, downgrade at the end of the period).
   */
  async createSubscription (subscription: SubscriptionInput, options?: CallOptions): Promise<SubscriptionObject> {
    const body = { subscription } satisfies SubscriptionCreateInput
    return (await this.call<{ subscription: SubscriptionObject }>({ operation: 'createSubscription', method: 'POST', path: '/subscriptions', body }, options)).subscription
  }

  async getSubscription (externalId: string, query?: SubscriptionGetQuery, options?: CallOptions): Promise<SubscriptionObjectExtended> {
    return (await this.call<{ subscription: SubscriptionObjectExtended }>({ operation: 'findSubscription', method: 'GET', path: `/subscriptions/${seg(externalId)}`, query }, options)).subscription
  }

  /** GET /subscriptions: Lago lists only active ones unless "status[]" says otherwise. */
  async listSubscriptions (query?: SubscriptionListQuery, options?: CallOptions): Promise<SubscriptionsPaginated> {
    return await this.call<SubscriptionsPaginated>({ operation: 'findAllSubscriptions', method: 'GET', path: '/subscriptions', query }, options)
  }

  async updateSubscription (externalId: string, subscription: SubscriptionUpdate, options?: CallOptions): Promise<SubscriptionObject> {
    const body = { subscription } satisfies SubscriptionUpdateInput
    return (await this.call<{ subscription: SubscriptionObject }>({ operation: 'updateSubscription', method: 'PUT', path: `/subscriptions/${seg(externalId)}`, body }, options)).subscription
  }

  /** DELETE /subscriptions/:id: terminates it (status=pending cancels a pending one). */
  async terminateSubscription (externalId: string, query?: SubscriptionTerminateQuery, options?: CallOptions): Promise<SubscriptionObject> {
    return (await this.call<{ subscription: SubscriptionObject }>({ operation: 'destroySubscription', method: 'DELETE', path: `/subscriptions/${seg(externalId)}`, query }, options)).subscription
  }

  // ---- plans ---------------------------------------------------------------------------------------------

  /** POST /plans. Charge prices are decimal strings; billable_metric_id is the metric's lago_id. */
  async createPlan (plan: PlanInput, options?: CallOptions): Promise<PlanObject> {
    const body = { plan } satisfies PlanCreateInput
    return (await this.call<{ plan: PlanObject }>({ operation: 'createPlan', method: 'POST', path: '/plans', body }, options)).plan
  }

  async getPlan (code: string, options?: CallOptions): Promise<PlanObject> {
    return (await this.call<{ plan: PlanObject }>({ operation: 'findPlan', method: 'GET', path: `/plans/${seg(code)}` }, options)).plan
  }

  async listPlans (query?: PlanListQuery, options?: CallOptions): Promise<PlansPaginated> {
    return await this.call<PlansPaginated>({ operation: 'findAllPlans', method: 'GET', path: '/plans', query }, options)
  }

  /** PUT /plans/:code. A charges array replaces the plan's charges (entries with id are updated). */
  async updatePlan (code: string, plan: PlanUpdate, options?: CallOptions): Promise<PlanObject> {
    const body = { plan } satisfies PlanUpdateInput
    return (await this.call<{ plan: PlanObject }>({ operation: 'updatePlan', method: 'PUT', path: `/plans/${seg(code)}`, body }, options)).plan
  }

  async deletePlan (code: string, options?: CallOptions): Promise<PlanObject> {
    return (await this.call<{ plan: PlanObject }>({ operation: 'destroyPlan', method: 'DELETE', path: `/plans/${seg(code)}` }, options)).plan
  }

  // ---- billable metrics ----------------------------------------------------------------------------------

  async createBillableMetric (billableMetric: BillableMetricInput, options?: CallOptions): Promise<BillableMetricObject> {
    const body = { billable_metric: billableMetric } satisfies BillableMetricCreateInput
    return (await this.call<{ billable_metric: BillableMetricObject }>({ operation: 'createBillableMetric', method: 'POST', path: '/billable_metrics', body }, options)).billable_metric
  }

  async getBillableMetric (code: string, options?: CallOptions): Promise<BillableMetricObject> {
    return (await this.call<{ billable_metric: BillableMetricObject }>({ operation: 'findBillableMetric', method: 'GET', path: `/billable_metrics/${seg(code)}` }, options)).billable_metric
  }

  async listBillableMetrics (query?: BillableMetricListQuery, options?: CallOptions): Promise<BillableMetricsPaginated> {
    return await this.call<BillableMetricsPaginated>({ operation: 'findAllBillableMetrics', method: 'GET', path: '/billable_metrics', query }, options)
  }

  async updateBillableMetric (code: string, billableMetric: BillableMetricUpdate, options?: CallOptions): Promise<BillableMetricObject> {
    const body = { billable_metric: billableMetric } satisfies BillableMetricUpdateInput
    return (await this.call<{ billable_metric: BillableMetricObject }>({ operation: 'updateBillableMetric', method: 'PUT', path: `/billable_metrics/${seg(code)}`, body }, options)).billable_metric
  }

  async deleteBillableMetric (code: string, options?: CallOptions): Promise<BillableMetricObject> {
    return (await this.call<{ billable_metric: BillableMetricObject }>({ operation: 'destroyBillableMetric', method: 'DELETE', path: `/billable_metrics/${seg(code)}` }, options)).billable_metric
  }

  // ---- invoices ------------------------------------------------------------------------------------------

  async listInvoices (query?: InvoiceListQuery, options?: CallOptions): Promise<InvoicesPaginated> {
    return await this.call<InvoicesPaginated>({ operation: 'findAllInvoices', method: 'GET', path: '/invoices', query }, options)
  }

  async getInvoice (lagoId: string, options?: CallOptions): Promise<InvoiceObjectExtended> {
    return (await this.call<{ invoice: InvoiceObjectExtended }>({ operation: 'findInvoice', method: 'GET', path: `/invoices/${seg(lagoId)}` }, options)).invoice
  }

  /**
   * POST /invoices/:id/download. The invoice with its file_url when the PDF exists; null when Lago has
   * queued its generation (it answers 200 with an empty body, and the URL comes later). 404 unless finalized.
   */
  async downloadInvoice (lagoId: string, options?: CallOptions): Promise<InvoiceObjectExtended | null> {
    const result = await this.call<{ invoice: InvoiceObjectExtended } | null>({
      operation: 'downloadInvoice', method: 'POST', path: `/invoices/${seg(lagoId)}/download`, emptyBodyAllowed: true
    }, options)
    return result?.invoice ?? null
  }

  // ---- webhooks ------------------------------------------------------------------------------------------

  /** GET /webhooks/json_public_key: base64 of the PEM of the key that signs jwt webhooks. */
  async getWebhookPublicKey (options?: CallOptions): Promise<string> {
    return (await this.call<WebhookPublicKey>({ operation: 'fetchJsonPublicKey', method: 'GET', path: '/webhooks/json_public_key' }, options)).webhook.public_key
  }

  async listWebhookEndpoints (query?: { page?: number, per_page?: number }, options?: CallOptions): Promise<WebhookEndpointsPaginated> {
    return await this.call<WebhookEndpointsPaginated>({ operation: 'findAllWebhookEndpoints', method: 'GET', path: '/webhook_endpoints', query }, options)
  }

  async createWebhookEndpoint (endpoint: WebhookEndpointInput, options?: CallOptions): Promise<WebhookEndpointObject> {
    const body = { webhook_endpoint: endpoint } satisfies WebhookEndpointCreateInput
    return (await this.call<WebhookEndpoint>({ operation: 'createWebhookEndpoint', method: 'POST', path: '/webhook_endpoints', body }, options)).webhook_endpoint
  }

  async updateWebhookEndpoint (lagoId: string, endpoint: WebhookEndpointInput, options?: CallOptions): Promise<WebhookEndpointObject> {
    const body = { webhook_endpoint: endpoint } satisfies WebhookEndpointUpdateInput
    return (await this.call<WebhookEndpoint>({ operation: 'updateWebhookEndpoint', method: 'PUT', path: `/webhook_endpoints/${seg(lagoId)}`, body }, options)).webhook_endpoint
  }

  // ---- transport -----------------------------------------------------------------------------------------

  private async call<T> (spec: RequestSpec, options: CallOptions | undefined): Promise<T> {
    const path = this.prefix + spec.path + queryString(spec.query)
    if (this.apiKey === undefined) throw new LagoNotConfiguredError(spec.method, path)
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.apiKey}`,
      accept: 'application/json',
      'user-agent': this.userAgent
    }
    let payload: string | undefined
    if (spec.body !== undefined) {
      payload = JSON.stringify(spec.body)
      headers['content-type'] = 'application/json'
    }

    const started = performance.now()
    const deadline = AbortSignal.timeout(this.requestTimeoutMs)
    let statusCode: number | null = null
    let rateLimit: RateLimitHeaders | null = null
    try {
      let text: string
      let responseHeaders: Record<string, string | string[] | undefined>
      try {
        const res = await (await this.connection()).request({ method: spec.method, path, headers, body: payload, signal: deadline, headersTimeout: this.headersTimeoutMs })
        statusCode = res.statusCode
        responseHeaders = res.headers
        rateLimit = parseRateLimit(res.headers)
        text = await res.body.text()
      } catch (err) {
        const kind = unavailableKind(err, deadline.aborted)
        const reason = kind === 'timeout' ? `no complete answer within the timeout (${(err as Error).message})` : (err as Error).message
        throw new LagoUnavailableError(kind, spec.method, path, reason, { cause: err })
      }
      const status = statusCode
      let parsed: unknown = null
      let isJson = false
      if (text !== '') {
        try {
          parsed = JSON.parse(text)
          isJson = true
        } catch {
          parsed = text.slice(0, 2048)
        }
      }
      if (status >= 400) throw this.apiError(spec, path, status, parsed, isJson, responseHeaders, rateLimit)
      if (text === '' && spec.emptyBodyAllowed === true) {
        this.notify(spec, path, started, statusCode, rateLimit, undefined, options)
        return null as T
      }
      if (!isJson || typeof parsed !== 'object' || parsed === null) {
        throw new LagoUnavailableError('invalid_response', spec.method, path, `answered ${status} without a JSON object body`)
      }
      this.notify(spec, path, started, statusCode, rateLimit, undefined, options)
      return parsed as T
    } catch (err) {
      const error = err as LagoApiError | LagoUnavailableError
      this.notify(spec, path, started, statusCode, rateLimit, error, options)
      throw error
    }
  }

  private apiError (spec: RequestSpec, path: string, status: number, parsed: unknown, isJson: boolean, headers: Record<string, string | string[] | undefined>, rateLimit: RateLimitHeaders | null): LagoApiError {
    const body = isJson && typeof parsed === 'object' && parsed !== null ? parsed as Record<string, unknown> : {}
    const details = body.error_details
    let retryAfterMs = parseRetryAfter(headers['retry-after'], Date.now(), this.maxRetryAfterMs)
    // Lago Cloud documents only x-ratelimit-reset for its 429: "back off until Reset reaches 0".
    if (retryAfterMs === null && status === 429 && rateLimit?.reset != null) retryAfterMs = Math.min(rateLimit.reset * 1000, this.maxRetryAfterMs)
    return new LagoApiError({
      method: spec.method,
      path,
      status,
      error: typeof body.error === 'string' ? body.error : `HTTP ${status}`,
      code: typeof body.code === 'string' ? body.code : null,
      errorDetails: typeof details === 'object' && details !== null && !Array.isArray(details) ? details as Record<string, unknown> : null,
      retryAfterMs,
      rateLimit,
      body: parsed
    })
  }

  private notify (spec: RequestSpec, path: string, started: number, statusCode: number | null, rateLimit: RateLimitHeaders | null,
    error: LagoApiError | LagoUnavailableError | undefined, options: CallOptions | undefined): void {
    const attempt: LagoAttempt = {
      operation: spec.operation,
      method: spec.method,
      path,
      statusCode,
      durationMs: performance.now() - started,
      rateLimit,
      ...(error !== undefined ? { error } : {}),
      ...(spec.eventCount !== undefined ? { eventCount: spec.eventCount } : {})
    }
    for (const observe of [this.observer, options?.onAttempt]) {
      try {
        observe?.(attempt)
      } catch {
        // An observer's failure must not turn a delivered request into a failed one.
      }
    }
  }
}
