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
  NODE_ENV: Type.Optional(Type.String({ description: 'With "production", the service refuses to run with open webhooks unless WEBHOOK_AUTH=none' })),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1, description: 'Interface to listen on' }),
  PORT: { ...Port, default: 3002, description: 'HTTP port' },
  LOG_LEVEL: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
    Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')
  ], { default: 'info', description: 'pino log level' }),
  LOG_REQUESTS: Bool(false, 'Log every request and response (two lines per request; halves single-event throughput). Errors and rejections are always logged'),
  TRUST_PROXY: Bool(false, 'Trust X-Forwarded-* headers (set behind a reverse proxy)'),

  DATABASE_URL: Type.String({
    pattern: '^postgres(ql)?://',
    default: 'postgres://postgres@127.0.0.1:5432/lago_integration',
    description: 'PostgreSQL connection string; the database is created if it does not exist'
  }),
  DATABASE_POOL_MAX: PositiveInt(20, 'Maximum PostgreSQL connections per instance', 1000),
  DATABASE_CONNECT_TIMEOUT_MS: PositiveInt(5000, 'Give up connecting to PostgreSQL after this long (requests then get 503)'),
  DATABASE_QUERY_TIMEOUT_MS: PositiveInt(15000, 'Client-side timeout for one query'),
  RUN_MIGRATIONS: Bool(true, 'Run database migrations at start (under an advisory lock)'),

  REDIS_URL: Type.String({ pattern: '^rediss?://', default: 'redis://127.0.0.1:6379', description: 'Redis connection string' }),
  REDIS_KEY_PREFIX: Type.String({ default: 'lago-integration:', description: 'Prefix for every Redis key this service writes' }),

  LAGO_API_URL: Type.String({ pattern: '^https?://', default: 'http://localhost:3000', description: 'Base URL of the Lago API' }),
  LAGO_API_KEY: Type.Optional(Type.String({ minLength: 1, description: 'Lago organization API key' })),
  LAGO_TIMEOUT_MS: PositiveInt(10_000, 'Give up on one Lago HTTP attempt after this long (headers and whole response)', 600_000),
  LAGO_CONNECTIONS: PositiveInt(10, 'Keep-alive connections to Lago per instance', 1000),
  LAGO_RETRY_AFTER_MAX_MS: PositiveInt(60_000, 'Cap on the wait that a Retry-After (or x-ratelimit-reset) from Lago can impose'),

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
  FORWARDER_CONCURRENCY: PositiveInt(4, 'Batches in flight to Lago at once, per instance', 64),
  FORWARDER_POLL_INTERVAL_MS: PositiveInt(1000, 'How often an idle forwarder looks for due events (new events wake it at once)'),
  FORWARDER_LEASE_MS: PositiveInt(60_000, 'How long a claim lasts: events of a replica that died are sent by another after this'),
  MAX_ATTEMPTS: PositiveInt(10, 'Failed sends (while Lago is otherwise up) before an event is dead-lettered', 1000),
  RETRY_BASE_DELAY_MS: PositiveInt(1000, 'First retry delay ceiling (exponential backoff with full jitter)'),
  RETRY_MAX_DELAY_MS: PositiveInt(300_000, 'Longest retry delay'),
  LAGO_PROBE_INTERVAL_MS: PositiveInt(5000, 'While Lago is down or refuses the key: the first wait between probes'),
  LAGO_PROBE_MAX_INTERVAL_MS: PositiveInt(60_000, 'While Lago is down or refuses the key: the longest wait between probes'),
  AUTO_PROVISION_CUSTOMERS: Bool(true, 'Create the Lago customer and a subscription to LAGO_PLAN_CODE for an unknown customer\'s first event; off: such events wait as unmapped'),
  UNMAPPED_RECHECK_INTERVAL_MS: PositiveInt(60_000, 'How often unmapped events are matched again against Lago'),

  API_KEYS: CommaList('Comma-separated service API keys accepted as Bearer tokens on /api and admin webhooks'),
  API_BODY_LIMIT_BYTES: PositiveInt(262_144, 'Largest request body accepted by the /api endpoints'),
  RATE_LIMIT_MAX: PositiveInt(600, 'Requests per window per API key on /api, and per client IP on every other endpoint (ingestion aside)'),
  RATE_LIMIT_WINDOW_MS: PositiveInt(60_000, 'Rate limit window'),
  INGEST_RATE_LIMIT_MAX: Type.Integer({ minimum: 0, maximum: 2_147_483_647, default: 300_000, description: 'Requests per window per client IP on the ingestion endpoints, all of them together; 0 turns this limit off (it costs a Redis round trip per request)' }),
  LAGO_CACHE_TTL_SECONDS: Type.Integer({ minimum: 0, maximum: 86_400, default: 30, description: 'How long Lago reads (customers, plans, billable metrics) are cached in Redis; 0 turns the cache off' }),

  WEBHOOK_SECRET: Type.Optional(Type.String({
    pattern: '^(whsec_)?[A-Za-z0-9+/=]{16,}$',
    description: 'Standard Webhooks signing secret (whsec_<base64>); when set, ingestion requires a valid signature or token'
  })),
  WEBHOOK_TOKENS: CommaList('Comma-separated Bearer tokens accepted on the ingestion webhooks'),
  WEBHOOK_AUTH: Type.Union([Type.Literal('auto'), Type.Literal('none')], {
    default: 'auto',
    description: '"none" explicitly allows open ingestion webhooks in production'
  }),
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
  LITELLM_MAPPING_REFRESH_MS: PositiveInt(10_000, 'How often each instance reloads the customer mapping table (changes made through this instance apply at once)'),
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

  INGEST_MAX_BATCH_ROWS: PositiveInt(1000, 'Most usage events written by one multi-row insert', 10_000),
  INGEST_MAX_CONCURRENT_WRITES: PositiveInt(2, 'Multi-row inserts in flight at once', 64),
  INGEST_LINGER_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: 'Extra wait to gather more events per insert (0: group only what arrives while a write is in flight)' })
})

export type Config = Static<typeof ConfigSchema>

/** Variables whose values must never be printed, not even in a config error. */
export const SECRET_CONFIG_KEYS: ReadonlyArray<keyof Config> = [
  'DATABASE_URL', 'REDIS_URL', 'LAGO_API_KEY', 'API_KEYS', 'WEBHOOK_SECRET', 'WEBHOOK_TOKENS',
  'LITELLM_MASTER_KEY', 'LITELLM_ALERTS_SECRET'
]
