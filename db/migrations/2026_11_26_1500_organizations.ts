import { sql, type Kysely } from 'kysely'

// Frozen in time: Kysely<any>, no application imports.

/** Every table whose rows belong to one organization (a customer's, or the organization's own). */
const OWNED_TABLES = [
  'litellm_usage_events', 'customers', 'customer_mappings', 'customer_provisioning_claims', 'webhook_delivery_logs',
  'litellm_spend_ledger', 'litellm_reconciliation', 'lago_webhooks', 'lago_invoices', 'api_keys'
]

// The seed's usage functions, now per organization: the organization is a fourth argument that defaults to
// `default`, so the seed README's three-argument call keeps working. Column names win over parameter names inside
// a SQL function, hence the qualified parameters.
const usageFunction = (name: string, keyColumn: string, keyExpression: string, perOrganization: boolean): string => `
  CREATE FUNCTION ${name}(customer_external_id text, "from" timestamptz, "to" timestamptz${perOrganization ? ", organization_id text DEFAULT 'default'" : ''})
  RETURNS TABLE (
    ${keyColumn},
    total_requests bigint,
    total_input_tokens bigint,
    total_output_tokens bigint,
    total_tokens bigint,
    total_cost_usd numeric
  )
  LANGUAGE sql STABLE AS $$
    SELECT ${keyExpression},
           count(*)::bigint,
           coalesce(sum(e.tokens_input), 0)::bigint,
           coalesce(sum(e.tokens_output), 0)::bigint,
           coalesce(sum(e.total_tokens), 0)::bigint,
           coalesce(sum(e.cost_usd), 0)
      FROM litellm_usage_events e
     WHERE e.customer_external_id = ${name}.customer_external_id
       ${perOrganization ? `AND e.organization_id = ${name}.organization_id` : ''}
       AND e.timestamp >= ${name}."from"
       AND e.timestamp < ${name}."to"
       AND e.status <> 'not_billable'
     GROUP BY 1
     ORDER BY 1
  $$`

const USAGE_FUNCTIONS: Array<[string, string, string]> = [
  ['aggregate_customer_usage', 'model text', 'e.model'],
  ['aggregate_customer_usage_by_provider', 'provider text', 'e.provider'],
  ['aggregate_customer_usage_by_day', 'day date', '(e.timestamp AT TIME ZONE \'UTC\')::date']
]

export async function up (db: Kysely<any>): Promise<void> {
  // One organization = one Lago organization. Secrets are AES-256-GCM ciphertexts (plugins/app/organizations/
  // secrets.ts), never plaintext. Null defaults mean "the service's own setting" (LAGO_METRIC_CODE…).
  await sql`
    CREATE TABLE organizations (
      id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
      name text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
      lago_api_url text,
      lago_api_key_encrypted text,
      lago_organization_id text UNIQUE,
      lago_webhook_hmac_key_encrypted text,
      webhook_secret_encrypted text,
      metric_code text,
      plan_code text,
      auto_provision_customers boolean,
      customer_fields text[] CHECK (customer_fields <@ ARRAY['end_user', 'user', 'team', 'org', 'key_alias', 'key_hash']
                                    AND cardinality(customer_fields) > 0),
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db)
  // The single-organization setup: its Lago URL and key come from LAGO_API_URL and LAGO_API_KEY.
  await sql`INSERT INTO organizations (id, name) VALUES ('default', 'Default organization')`.execute(db)

  // Lago webhooks named Lago's organization in organization_id; that name now means ours.
  await sql`ALTER TABLE lago_webhooks RENAME COLUMN organization_id TO lago_organization_id`.execute(db)

  // Existing rows take the column default: everything stored so far belongs to `default`.
  for (const table of OWNED_TABLES) {
    await sql`ALTER TABLE ${sql.table(table)}
                ADD COLUMN organization_id text NOT NULL DEFAULT 'default' REFERENCES organizations (id)`.execute(db)
  }

  // Uniqueness per organization: the same request id, customer id or identity in two organizations are two things.
  await sql`
    ALTER TABLE litellm_usage_events
      DROP CONSTRAINT litellm_usage_events_request_id_key,
      ADD CONSTRAINT litellm_usage_events_organization_request_id_key UNIQUE (organization_id, request_id)`.execute(db)
  await sql`
    ALTER TABLE customers
      DROP CONSTRAINT customers_pkey,
      ADD CONSTRAINT customers_pkey PRIMARY KEY (organization_id, external_id)`.execute(db)
  await sql`
    ALTER TABLE customer_mappings
      DROP CONSTRAINT customer_mappings_pkey,
      ADD CONSTRAINT customer_mappings_pkey PRIMARY KEY (organization_id, identity, value)`.execute(db)
  await sql`
    ALTER TABLE customer_provisioning_claims
      DROP CONSTRAINT customer_provisioning_claims_pkey,
      ADD CONSTRAINT customer_provisioning_claims_pkey PRIMARY KEY (organization_id, customer_external_id)`.execute(db)
  await sql`
    ALTER TABLE litellm_reconciliation
      DROP CONSTRAINT litellm_reconciliation_pkey,
      ADD CONSTRAINT litellm_reconciliation_pkey PRIMARY KEY (organization_id, name)`.execute(db)
  await sql`
    ALTER TABLE lago_webhooks
      DROP CONSTRAINT lago_webhooks_unique_key_key,
      ADD CONSTRAINT lago_webhooks_organization_unique_key_key UNIQUE (organization_id, unique_key)`.execute(db)
  await sql`
    ALTER TABLE lago_invoices
      DROP CONSTRAINT lago_invoices_pkey,
      ADD CONSTRAINT lago_invoices_pkey PRIMARY KEY (organization_id, lago_id)`.execute(db)
  await sql`DROP INDEX api_keys_live_name_idx`.execute(db)
  await sql`CREATE UNIQUE INDEX api_keys_live_name_idx ON api_keys (organization_id, name) WHERE revoked_at IS NULL`.execute(db)

  // Lookups by customer are per organization now.
  await sql`DROP INDEX litellm_usage_events_customer_time_idx`.execute(db)
  await sql`CREATE INDEX litellm_usage_events_customer_time_idx ON litellm_usage_events (organization_id, customer_external_id, "timestamp")`.execute(db)
  await sql`DROP INDEX lago_invoices_customer_idx`.execute(db)
  await sql`CREATE INDEX lago_invoices_customer_idx ON lago_invoices (organization_id, customer_external_id, issuing_date)`.execute(db)
  await sql`DROP INDEX litellm_spend_ledger_customer_idx`.execute(db)
  await sql`CREATE INDEX litellm_spend_ledger_customer_idx ON litellm_spend_ledger (organization_id, customer_id, received_at)`.execute(db)
  // Each organization's own queue, for claiming fairly across organizations.
  await sql`CREATE INDEX litellm_usage_events_organization_unsent_idx ON litellm_usage_events (organization_id, id)
            WHERE status IN ('pending', 'failed')`.execute(db)
  // The dashboard's covering index, which now also answers per organization.
  await sql`DROP INDEX IF EXISTS litellm_usage_events_timestamp_usage_idx`.execute(db)
  await sql`CREATE INDEX litellm_usage_events_timestamp_usage_idx ON litellm_usage_events ("timestamp")
            INCLUDE (organization_id, customer_external_id, model, status, tokens_input, tokens_output, total_tokens, cost_usd)`.execute(db)

  // An organization's ingestion tokens: only their SHA-256 is stored, like api_keys.
  await sql`
    CREATE TABLE ingestion_tokens (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      organization_id text NOT NULL REFERENCES organizations (id),
      token_prefix text NOT NULL,
      token_hash bytea NOT NULL UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz
    )`.execute(db)
  await sql`CREATE INDEX ingestion_tokens_organization_idx ON ingestion_tokens (organization_id)`.execute(db)

  // Routing by LiteLLM identity for a shared ingestion token: calls of this LiteLLM org or team bill this organization.
  await sql`
    CREATE TABLE organization_routes (
      identity text NOT NULL CHECK (identity IN ('org', 'team')),
      value text NOT NULL CHECK (length(value) BETWEEN 1 AND 255),
      organization_id text NOT NULL REFERENCES organizations (id),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (identity, value)
    )`.execute(db)

  for (const [name, keyColumn, keyExpression] of USAGE_FUNCTIONS) {
    await sql`DROP FUNCTION ${sql.raw(name)}(text, timestamptz, timestamptz)`.execute(db)
    await sql.raw(usageFunction(name, keyColumn, keyExpression, true)).execute(db)
  }
}

export async function down (db: Kysely<any>): Promise<void> {
  // Only the default organization fits the previous schema: refuse rather than merge organizations' rows.
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM organizations WHERE id <> 'default'`.execute(db)
  if (rows[0].n > 0) throw new Error('cannot revert: organizations other than default exist (their rows would merge into one)')

  for (const [name, keyColumn, keyExpression] of USAGE_FUNCTIONS) {
    await sql`DROP FUNCTION ${sql.raw(name)}(text, timestamptz, timestamptz, text)`.execute(db)
    await sql.raw(usageFunction(name, keyColumn, keyExpression, false)).execute(db)
  }
  await sql`DROP TABLE organization_routes`.execute(db)
  await sql`DROP TABLE ingestion_tokens`.execute(db)

  await sql`DROP INDEX litellm_usage_events_timestamp_usage_idx`.execute(db)
  await sql`CREATE INDEX litellm_usage_events_timestamp_usage_idx ON litellm_usage_events ("timestamp")
            INCLUDE (customer_external_id, model, status, tokens_input, tokens_output, total_tokens, cost_usd)`.execute(db)
  await sql`DROP INDEX litellm_usage_events_organization_unsent_idx`.execute(db)
  await sql`DROP INDEX litellm_spend_ledger_customer_idx`.execute(db)
  await sql`CREATE INDEX litellm_spend_ledger_customer_idx ON litellm_spend_ledger (customer_id, received_at)`.execute(db)
  await sql`DROP INDEX lago_invoices_customer_idx`.execute(db)
  await sql`CREATE INDEX lago_invoices_customer_idx ON lago_invoices (customer_external_id, issuing_date)`.execute(db)
  await sql`DROP INDEX litellm_usage_events_customer_time_idx`.execute(db)
  await sql`CREATE INDEX litellm_usage_events_customer_time_idx ON litellm_usage_events (customer_external_id, "timestamp")`.execute(db)
  await sql`DROP INDEX api_keys_live_name_idx`.execute(db)
  await sql`CREATE UNIQUE INDEX api_keys_live_name_idx ON api_keys (name) WHERE revoked_at IS NULL`.execute(db)

  await sql`ALTER TABLE lago_invoices DROP CONSTRAINT lago_invoices_pkey, ADD CONSTRAINT lago_invoices_pkey PRIMARY KEY (lago_id)`.execute(db)
  await sql`ALTER TABLE lago_webhooks DROP CONSTRAINT lago_webhooks_organization_unique_key_key,
              ADD CONSTRAINT lago_webhooks_unique_key_key UNIQUE (unique_key)`.execute(db)
  await sql`ALTER TABLE litellm_reconciliation DROP CONSTRAINT litellm_reconciliation_pkey,
              ADD CONSTRAINT litellm_reconciliation_pkey PRIMARY KEY (name)`.execute(db)
  await sql`ALTER TABLE customer_provisioning_claims DROP CONSTRAINT customer_provisioning_claims_pkey,
              ADD CONSTRAINT customer_provisioning_claims_pkey PRIMARY KEY (customer_external_id)`.execute(db)
  await sql`ALTER TABLE customer_mappings DROP CONSTRAINT customer_mappings_pkey,
              ADD CONSTRAINT customer_mappings_pkey PRIMARY KEY (identity, value)`.execute(db)
  await sql`ALTER TABLE customers DROP CONSTRAINT customers_pkey, ADD CONSTRAINT customers_pkey PRIMARY KEY (external_id)`.execute(db)
  await sql`ALTER TABLE litellm_usage_events DROP CONSTRAINT litellm_usage_events_organization_request_id_key,
              ADD CONSTRAINT litellm_usage_events_request_id_key UNIQUE (request_id)`.execute(db)

  for (const table of OWNED_TABLES) {
    await sql`ALTER TABLE ${sql.table(table)} DROP COLUMN organization_id`.execute(db)
  }
  await sql`ALTER TABLE lago_webhooks RENAME COLUMN lago_organization_id TO organization_id`.execute(db)
  await sql`DROP TABLE organizations`.execute(db)
}
