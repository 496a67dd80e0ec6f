import { Type, type Static } from '@sinclair/typebox'

const Port = Type.Integer({ minimum: 1, maximum: 65535 })
const PositiveInt = (def: number, description: string, max = 2_147_483_647) =>
  Type.Integer({ minimum: 1, maximum: max, default: def, description })
const Bool = (def: boolean, description: string) => Type.Boolean({ default: def, description })
const CommaList = (description: string) => Type.Optional(Type.String({ description }))
const IDENTITY = '(end_user|user|team|org|key_alias|key_hash)'

/**
 * Every environment variable the service reads. Parsed once at start (plugins/external/config.ts);
 * README's configuration table and .env.example document the same list.
 */
export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Optional(Type.String({ description: 'Passed to libraries; changes no security behaviour (see WEBHOOK_AUTH)' })),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1, description: 'Interface to listen on' }),
  PORT: { ...Port, default: 3002, description: 'HTTP port' },
  LOG_LEVEL: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
    Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')
  ], { default: 'info', description: 'pino log level' }),
  LOG_REQUESTS: Bool(false, 'Log every request and response (two lines per request; halves single-event throughput). Errors and rejections are always logged'),
  TRUST_PROXY: Bool(false, 'Trust X-Forwarded-* headers (set behind a reverse proxy)'),

  DATABASE_URL: Type.Optional(Type.String({
    pattern: '^postgres(ql)?://',
    description: 'PostgreSQL connection string; the database is created if it does not exist. Unset: an embedded PostgreSQL keeps its data in DATA_DIR'
  })),
  DATA_DIR: Type.String({ minLength: 1, default: './data', description: 'Where the embedded PostgreSQL keeps its data when DATABASE_URL is unset' }),
  DATABASE_POOL_MAX: PositiveInt(20, 'Maximum PostgreSQL connections per instance', 1000),
  DATABASE_CONNECT_TIMEOUT_MS: PositiveInt(5000, 'Give up connecting to PostgreSQL after this long (requests then get 503)'),
  DATABASE_QUERY_TIMEOUT_MS: PositiveInt(15000, 'Client-side timeout for one query'),
  RUN_MIGRATIONS: Bool(true, 'Run database migrations at start (under an advisory lock)'),

  REDIS_URL: Type.Optional(Type.String({
    pattern: '^rediss?://',
    description: 'Redis connection string, for rate limits and the Lago read cache shared by replicas; unset: both in-process (one instance). Never required: while it is down both fall back in-process'
  })),
  REDIS_COMMAND_TIMEOUT_MS: PositiveInt(100, 'A Redis command slower than this counts as a failure (the request goes on in-process); 3 in a row stop Redis calls for 5 s', 60_000),
  REDIS_KEY_PREFIX: Type.String({ default: 'lago-integration:', description: 'Prefix for every Redis key this service writes' }),

  LAGO_API_URL: Type.String({ pattern: '^https?://', default: 'http://localhost:3000', description: 'Base URL of the Lago API' }),
  LAGO_API_KEY: Type.Optional(Type.String({ minLength: 1, description: 'Lago organization API key' })),
  LAGO_TIMEOUT_MS: PositiveInt(10_000, 'Give up on one Lago HTTP attempt after this long (headers and whole response)', 600_000),
  LAGO_CONNECTIONS: PositiveInt(10, 'Keep-alive connections to Lago per instance', 1000),

  LAGO_METRIC_CODE: Type.String({ minLength: 1, default: 'ai_usage', description: 'Billable metric code of the usage events sent to Lago' }),
  LAGO_PLAN_CODE: Type.String({ minLength: 1, default: 'ai_usage_plan', description: 'Plan that auto-provisioned customers are subscribed to' }),
  LAGO_PLAN_INTERVAL: Type.Union([Type.Literal('weekly'), Type.Literal('monthly'), Type.Literal('quarterly'), Type.Literal('semiannual'), Type.Literal('yearly')],
    { default: 'monthly', description: 'Billing interval of the default plan (bootstrap)' }),
  LAGO_PLAN_AMOUNT_CENTS: Type.Integer({ minimum: 0, default: 0, description: 'Subscription fee of the default plan, in cents (bootstrap)' }),
  LAGO_PLAN_CURRENCY: Type.String({ pattern: '^[A-Z]{3}$', default: 'USD', description: 'Currency of the default plan (bootstrap)' }),
  LAGO_PLAN_CHARGE_MODEL: Type.Union([Type.Literal('standard'), Type.Literal('dynamic')], {
    default: 'standard',
    description: 'Usage charge of the default plan: standard (LAGO_PLAN_UNIT_AMOUNT per token) or dynamic (the exact cost LiteLLM reported)'
  }),
  LAGO_PLAN_UNIT_AMOUNT: Type.String({ pattern: '^\\d+(\\.\\d+)?$', default: '0.000002', description: 'Price per token of the default plan\'s standard charge, a decimal string (bootstrap)' }),
  BOOTSTRAP_ON_START: Bool(true, 'Create the default billable metric and plan in Lago at start when they are missing'),

  FORWARDER_ENABLED: Bool(true, 'Forward stored usage events to Lago (needs LAGO_API_KEY)'),
  FORWARDER_BATCH_SIZE: PositiveInt(100, 'Usage events per POST /api/v1/events/batch (Lago accepts at most 100)', 100),
  FORWARDER_CONCURRENCY: PositiveInt(8, 'Batches in flight to Lago at once, per instance', 64),
  FORWARDER_CONCURRENCY_WHILE_INGESTING: PositiveInt(1, 'While ingestion is writing (a commit within the last second), how many of the forwarder\'s database steps (claims, settles) run at once, per instance: ingestion first', 64),
  RETENTION_DAYS: Type.Integer({ minimum: 0, maximum: 36_500, default: 0, description: 'Months wholly older than this many days are removed whole: the delivery log\'s, and the usage events\' that are forwarded or not billable (the others are kept); 0 keeps everything' }),
  FORWARDER_LEASE_MS: PositiveInt(60_000, 'How long a claim lasts: events of a replica that died are sent by another after this'),
  MAX_ATTEMPTS: PositiveInt(10, 'Failed sends (while Lago is otherwise up) before an event is dead-lettered', 1000),
  RETRY_BASE_DELAY_MS: PositiveInt(1000, 'First retry delay ceiling (exponential backoff with full jitter)'),
  RETRY_MAX_DELAY_MS: PositiveInt(300_000, 'Longest retry delay'),
  LAGO_PROBE_INTERVAL_MS: PositiveInt(5000, 'While Lago is down or refuses the key: the first wait between probes'),
  AUTO_PROVISION_CUSTOMERS: Bool(true, 'Create the Lago customer and a subscription to LAGO_PLAN_CODE for an unknown customer\'s first event; off: such events wait as unmapped'),

  API_KEYS: CommaList('Comma-separated service API keys accepted as Bearer tokens on /api and admin webhooks'),
  ADMIN_API_KEYS: CommaList('Comma-separated admin keys (Bearer): manage organizations under /api/organizations and act on any organization by naming it'),
  ORGANIZATION_SECRETS_KEY: Type.Optional(Type.String({
    pattern: '^[A-Za-z0-9+/]{43}=$',
    description: 'Base64 of 32 random bytes (openssl rand -base64 32): encrypts organizations\' Lago keys at rest (AES-256-GCM); needed to add an organization other than default'
  })),
  API_BODY_LIMIT_BYTES: PositiveInt(262_144, 'Largest request body accepted by the /api endpoints'),
  RATE_LIMIT_MAX: PositiveInt(600, 'Requests per window per API key on /api, and per client IP on every other endpoint (ingestion aside)'),
  RATE_LIMIT_WINDOW_MS: PositiveInt(60_000, 'Rate limit window'),
  INGEST_RATE_LIMIT_MAX: Type.Integer({ minimum: 0, maximum: 2_147_483_647, default: 3_000_000, description: 'Requests per window per client IP on the ingestion endpoints, all of them together, counted per instance in-process; 0 turns this limit off' }),
  LAGO_CACHE_TTL_SECONDS: Type.Integer({ minimum: 0, maximum: 86_400, default: 30, description: 'How long Lago reads (customers, plans, billable metrics) are cached (in Redis, or in-process without REDIS_URL); 0 turns the cache off' }),

  WEBHOOK_SECRET: Type.Optional(Type.String({
    pattern: '^(whsec_)?[A-Za-z0-9+/=]{16,}$',
    description: 'Standard Webhooks signing secret (whsec_<base64>); when set, ingestion requires a valid signature or token'
  })),
  WEBHOOK_TOKENS: CommaList('Comma-separated Bearer tokens accepted on the ingestion webhooks'),
  WEBHOOK_AUTH: Type.Optional(Type.Union([Type.Literal('required'), Type.Literal('none')], {
    description: '"required": ingestion needs WEBHOOK_TOKENS or WEBHOOK_SECRET (refuses to start without one); "none": ' +
      'open ingestion on purpose. Default: required when a token or secret is set, else none'
  })),
  WEBHOOK_SIGNATURE_TOLERANCE_SECONDS: PositiveInt(300, 'Reject signed webhooks whose timestamp is further than this from now'),

  BODY_LIMIT_BYTES: PositiveInt(1_048_576, 'Largest request body accepted by default'),
  WEBHOOK_BATCH_MAX_EVENTS: PositiveInt(1000, 'Most events accepted in one POST /webhooks/litellm/batch', 100_000),
  WEBHOOK_BATCH_BODY_LIMIT_BYTES: PositiveInt(5_242_880, 'Largest body accepted by POST /webhooks/litellm/batch'),
  REQUEST_TIMEOUT_MS: PositiveInt(30_000, 'Abort a request that has not been fully received and answered in this time'),
  SHUTDOWN_GRACE_MS: PositiveInt(10_000, 'On SIGTERM/SIGINT, how long to drain before forcing exit'),

  GENERIC_BODY_LIMIT_BYTES: PositiveInt(52_428_800, 'Largest body accepted by POST /webhooks/litellm/generic (LiteLLM batches carry messages and responses)'),
  GENERIC_MAX_PAYLOADS: PositiveInt(2048, 'Most payloads accepted in one POST /webhooks/litellm/generic (LiteLLM sends its batch size, 512 unless changed)', 100_000),

  LITELLM_CUSTOMER_FIELDS: Type.String({
    pattern: `^\\s*${IDENTITY}\\s*(,\\s*${IDENTITY}\\s*)*$`,
    default: 'end_user,team,user,key_alias,key_hash',
    description: 'Which LiteLLM identity names the billed Lago customer, in fallback order: end_user, user, team, org, key_alias, key_hash'
  }),
  LITELLM_DEFAULT_CUSTOMER: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Lago customer billed for calls that carry no usable identity (unset: such calls wait as unmapped)' })),
  LITELLM_MAPPED_CUSTOMERS_ONLY: Bool(false, 'Bill only identities listed in the customer mapping table (else an identity is itself the Lago customer id)'),
  LAGO_EVENTS_DEDUPE_WINDOW_MS: Type.Integer({
    minimum: 0,
    maximum: 60_000,
    default: 0,
    description: 'POST /api/v1/events: treat events with identical customer, model, tokens and cost this close in time as one (0: off; see README before enabling)'
  }),
  LITELLM_ALERTS_SECRET: Type.Optional(Type.String({ minLength: 16, pattern: '^[A-Za-z0-9_-]+$', description: 'Secret path segment of POST /webhooks/litellm/alerts/<secret> (unset: the endpoint answers 404)' })),

  LITELLM_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'Base URL of the LiteLLM proxy; with LITELLM_MASTER_KEY, turns on reconciliation against its spend logs' })),
  LITELLM_MASTER_KEY: Type.Optional(Type.String({ minLength: 1, description: 'LiteLLM key allowed to read spend logs (the master key or an admin key)' })),
  LITELLM_SPEND_LOGS_API: Type.Union([Type.Literal('ui'), Type.Literal('spend_logs')], {
    default: 'ui',
    description: 'ui: page through GET /spend/logs/ui (paged, second-precise windows); spend_logs: GET /spend/logs?summarize=false one UTC day at a time (unpaged)'
  }),
  LITELLM_RECONCILE_INTERVAL_MS: PositiveInt(300_000, 'How often the reconciler looks for calls missing from this service'),
  LITELLM_RECONCILE_LAG_MS: Type.Integer({ minimum: 0, maximum: 604_800_000, default: 1_800_000, description: 'Reconcile only calls that started at least this long ago (longer than your longest call plus LiteLLM\'s spend-log write delay)' }),
  LITELLM_RECONCILE_LOOKBACK_MS: PositiveInt(86_400_000, 'On its first run, how far back the reconciler starts'),
  LITELLM_TIMEOUT_MS: PositiveInt(30_000, 'Give up on one request to LiteLLM after this long'),

  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'This service\'s URL as Lago reaches it; when set, bootstrap registers POST <PUBLIC_URL>/webhooks/lago as a Lago webhook endpoint' })),
  LAGO_WEBHOOK_HMAC_KEY: Type.Optional(Type.String({ minLength: 1, description: 'Lago organization\'s HMAC key (Developers > Webhooks > HMAC signature token): accepts hmac-signed Lago webhooks; unset: only jwt-signed ones' })),
  LAGO_WEBHOOK_HMAC_KEY_PREVIOUS: Type.Optional(Type.String({ minLength: 1, description: 'The previous HMAC key, also accepted while the key is being rotated' })),
  LAGO_WEBHOOK_ISSUER: Type.Optional(Type.String({ minLength: 1, description: 'Comma-separated accepted iss of jwt-signed Lago webhooks: Lago\'s own LAGO_API_URL (default: this service\'s LAGO_API_URL)' })),
  LAGO_WEBHOOK_SIGNATURE_ALGO: Type.Optional(Type.Union([Type.Literal('hmac'), Type.Literal('jwt')], { description: 'Signature algorithm of the webhook endpoint bootstrap registers (default: hmac when LAGO_WEBHOOK_HMAC_KEY is set, else jwt)' })),
  BILLING_AUDIT_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 604_800_000, default: 3_600_000, description: 'How often the billing audit compares what was forwarded with Lago\'s current usage (0: only on GET /api/billing/audit)' }),
  BILLING_AUDIT_LAGO_LAG_MS: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 300_000, description: 'Events forwarded this long before the billing audit reads Lago may be missing from Lago\'s current usage without a mismatch (Lago updates usage in a background job); 0: only those settled while it reads' }),

  INGEST_MAX_BATCH_ROWS: PositiveInt(1000, 'Most usage events written by one multi-row insert', 10_000),
  INGEST_MAX_CONCURRENT_WRITES: PositiveInt(2, 'Multi-row inserts in flight at once', 64),
  INGEST_LINGER_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: 'Extra wait to gather more events per insert (0: group only what arrives while a write is in flight)' })
})

/** The environment as validated, before its lists are decoded. */
export type EnvConfig = Static<typeof ConfigSchema>

/** The lists of the environment, decoded once by loadConfig (plugins/external/config.ts). */
export type ListKeys = 'API_KEYS' | 'ADMIN_API_KEYS' | 'WEBHOOK_TOKENS' | 'LITELLM_CUSTOMER_FIELDS' | 'LAGO_WEBHOOK_ISSUER'
export type IdentityField = 'end_user' | 'user' | 'team' | 'org' | 'key_alias' | 'key_hash'

/** The configuration the service runs with. */
export type Config = Omit<EnvConfig, ListKeys> & {
  API_KEYS: string[]
  ADMIN_API_KEYS: string[]
  WEBHOOK_TOKENS: string[]
  /** Without repeats, in the configured order. */
  LITELLM_CUSTOMER_FIELDS: IdentityField[]
  /** LAGO_API_URL when unset. */
  LAGO_WEBHOOK_ISSUER: string[]
}

/**
 * Internal timings: constants of the code, not settings an operator needs (none changes what is billed; each is
 * a latency floor or a safety cap). Tests shorten them through buildApp's `tuning`, never through the environment.
 */
export const TUNING = {
  /** An idle forwarder looks for due events this often. New events and retries wake it at once: this only
   * catches events whose retry delay ran out. */
  forwarderPollIntervalMs: 1000,
  /** While Lago is down or refuses the key, probes back off up to this (LAGO_PROBE_INTERVAL_MS is the first wait). */
  lagoProbeMaxIntervalMs: 60_000,
  /** Longest wait a Retry-After (or x-ratelimit-reset) from Lago can impose: a bogus header cannot stall forwarding. */
  lagoRetryAfterMaxMs: 60_000,
  /** How often each instance reloads the customer mapping table; changes through this instance apply at once. */
  customerMappingRefreshMs: 10_000,
  /** How often stored Lago webhooks not yet acted on are looked for; a new one wakes the worker at once. */
  lagoWebhookPollIntervalMs: 1000,
  /** How often unmapped events are matched again against Lago (customers created in Lago directly). */
  unmappedRecheckIntervalMs: 60_000
}

export type Tuning = typeof TUNING

/** Variables whose values must never be printed, not even in a config error. */
export const SECRET_CONFIG_KEYS: ReadonlyArray<keyof Config> = [
  'DATABASE_URL', 'REDIS_URL', 'LAGO_API_KEY', 'API_KEYS', 'WEBHOOK_SECRET', 'WEBHOOK_TOKENS',
  'LITELLM_MASTER_KEY', 'LITELLM_ALERTS_SECRET', 'LAGO_WEBHOOK_HMAC_KEY', 'LAGO_WEBHOOK_HMAC_KEY_PREVIOUS',
  'ADMIN_API_KEYS', 'ORGANIZATION_SECRETS_KEY'
]
