import { randomBytes } from 'node:crypto'
import { sql, type Kysely, type Selectable, type Updateable } from 'kysely'
import type { Database, OrganizationRouteTable, OrganizationTable, RouteIdentityKind } from '../../../db/database.js'
import { NO_CUSTOMER } from '../usage-events/normalize.js'
import { INGESTION_TOKEN_PREFIX, sha256 } from '../webhook-auth.js'

export type OrganizationRow = Selectable<OrganizationTable>
export type OrganizationPatch = Updateable<OrganizationTable>

export async function loadOrganizations (db: Kysely<Database>): Promise<OrganizationRow[]> {
  return await db.selectFrom('organizations').selectAll().orderBy('id').execute()
}

export async function findOrganization (db: Kysely<Database>, id: string): Promise<OrganizationRow | undefined> {
  return await db.selectFrom('organizations').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Changes whenever an organization or an ingestion token is added or changed (on any replica): cheap to poll. */
export async function organizationsVersion (db: Kysely<Database>): Promise<string> {
  const { rows } = await sql<{ v: string }>`
    SELECT (SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') FROM organizations) || '/' ||
           (SELECT count(*)::text || '/' || count(revoked_at)::text FROM ingestion_tokens) || '/' ||
           (SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') FROM organization_routes) AS v`.execute(db)
  return rows[0].v
}

/** Every ingestion token's digest, with its organization and whether it was revoked (a revoked one stays refused). */
export async function loadIngestionTokens (db: Kysely<Database>): Promise<Array<{ organization_id: string, token_hash: Buffer, revoked: boolean }>> {
  const rows = await db.selectFrom('ingestion_tokens').select(['organization_id', 'token_hash', 'revoked_at']).execute()
  return rows.map((r) => ({ organization_id: r.organization_id, token_hash: r.token_hash, revoked: r.revoked_at !== null }))
}

/** An ingestion token as it may be shown: never the token, only its first characters. */
export interface IngestionTokenInfo { id: number, prefix: string, created_at: Date, revoked_at: Date | null }

export async function listIngestionTokens (db: Kysely<Database>, organizationId: string): Promise<IngestionTokenInfo[]> {
  return await db.selectFrom('ingestion_tokens').select(['id', 'token_prefix as prefix', 'created_at', 'revoked_at'])
    .where('organization_id', '=', organizationId).orderBy('id').execute()
}

/**
 * Revokes one of the organization's ingestion tokens (a revoked one keeps its first revocation time); its digest, to
 * forget it at once, or undefined when the organization has no such token.
 */
export async function revokeIngestionToken (db: Kysely<Database>, organizationId: string, id: number): Promise<{ info: IngestionTokenInfo, tokenHash: Buffer } | undefined> {
  const row = await db.updateTable('ingestion_tokens')
    .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` as unknown as Date })
    .where('organization_id', '=', organizationId).where('id', '=', id)
    .returning(['id', 'token_prefix', 'created_at', 'revoked_at', 'token_hash']).executeTakeFirst()
  if (row === undefined) return undefined
  return { info: { id: row.id, prefix: row.token_prefix, created_at: row.created_at, revoked_at: row.revoked_at }, tokenHash: row.token_hash }
}

/** Stores a new ingestion token of the organization and returns it: the only time it is ever shown. */
export async function createIngestionToken (db: Kysely<Database>, organizationId: string): Promise<{ token: string, id: number, prefix: string, created_at: Date }> {
  const token = INGESTION_TOKEN_PREFIX + randomBytes(32).toString('base64url')
  const prefix = token.slice(0, INGESTION_TOKEN_PREFIX.length + 6)
  const row = await db.insertInto('ingestion_tokens')
    .values({ organization_id: organizationId, token_prefix: prefix, token_hash: sha256(token) })
    .returning(['id', 'created_at']).executeTakeFirstOrThrow()
  return { token, id: row.id, prefix, created_at: row.created_at }
}

/** Inserts an organization; null when the id (or Lago organization id) is taken. */
export async function insertOrganization (db: Kysely<Database>, row: Omit<OrganizationRow, 'created_at' | 'updated_at' | 'status'>): Promise<OrganizationRow | null> {
  const inserted = await db.insertInto('organizations')
    .values(row)
    .onConflict((oc) => oc.doNothing())
    .returningAll().executeTakeFirst()
  return inserted ?? null
}

export async function updateOrganization (db: Kysely<Database>, id: string, patch: OrganizationPatch): Promise<OrganizationRow | undefined> {
  const values: OrganizationPatch = { ...patch, updated_at: sql<Date>`clock_timestamp()` as unknown as Date }
  return await db.updateTable('organizations').set(values).where('id', '=', id).returningAll().executeTakeFirst()
}

/**
 * Every table with rows of an organization (an organization_id column; webhook_delivery_logs lost its foreign key
 * when it was partitioned, usage_event_claims in migration 2026_11_27_1000), children first. A test checks this list
 * against the database's columns, so that a new table cannot be forgotten.
 */
export const ORGANIZATION_TABLES = [
  // The counts after the events: their delete trigger writes the counts' last deltas.
  'litellm_usage_events', 'usage_event_claims', 'usage_event_counts', 'usage_event_hourly_counts', 'usage_event_keys', 'customer_provisioning_claims', 'customers', 'customer_mappings', 'webhook_delivery_logs',
  'litellm_spend_ledger', 'litellm_reconciliation', 'lago_webhooks', 'lago_invoices', 'api_keys', 'ingestion_tokens',
  'organization_routes'
] as const

/**
 * Deletes a disabled organization and every row it owns, in one transaction (all or nothing); the rows deleted per
 * table. `not_found` or `active` (nothing deleted) otherwise. The row is locked first, so that it cannot be enabled
 * meanwhile. Read committed whatever the database's default: each DELETE sees what committed before it, so the
 * claims of a claim in flight, which the events' DELETE waits for, are deleted after them (claims have no foreign key).
 */
export async function purgeOrganization (db: Kysely<Database>, id: string): Promise<{ deleted: Record<string, number> } | 'not_found' | 'active'> {
  return await db.transaction().setIsolationLevel('read committed').execute(async (trx) => {
    const row = await trx.selectFrom('organizations').select('status').where('id', '=', id).forUpdate().executeTakeFirst()
    if (row === undefined) return 'not_found' as const
    if (row.status === 'active') return 'active' as const
    const deleted: Record<string, number> = {}
    for (const table of ORGANIZATION_TABLES) {
      const result = await sql`DELETE FROM ${sql.table(table)} WHERE organization_id = ${id}`.execute(trx)
      deleted[table] = Number(result.numAffectedRows ?? 0)
    }
    await trx.deleteFrom('organizations').where('id', '=', id).execute()
    return { deleted }
  })
}

export type OrganizationRouteRow = Selectable<OrganizationRouteTable>

export async function loadRoutes (db: Kysely<Database>): Promise<OrganizationRouteRow[]> {
  return await db.selectFrom('organization_routes').selectAll().orderBy('identity').orderBy('value').execute()
}

/** Where events that no route claims wait: a disabled organization with no Lago, never forwarded. */
export const UNROUTED_ORGANIZATION_ID = 'unrouted'

export async function ensureUnroutedOrganization (db: Kysely<Database>): Promise<void> {
  await db.insertInto('organizations')
    .values({ id: UNROUTED_ORGANIZATION_ID, name: 'Events no organization route claims (waiting)', status: 'disabled' } as never)
    .onConflict((oc) => oc.column('id').doNothing()).execute()
}

/**
 * Creates or replaces a route, then moves the waiting unrouted events it now claims to its organization (pending
 * again when they name a customer); an event whose request_id that organization already has stays where it is.
 */
export async function putRoute (db: Kysely<Database>, identity: RouteIdentityKind, value: string, organizationId: string): Promise<{ row: OrganizationRouteRow, created: boolean, moved: number } | 'not_found'> {
  return await db.transaction().execute(async (trx) => {
    // Locked as the events' inserts lock theirs (events have no foreign key): a purge cannot delete it under the
    // events moved to it, or this transaction finds it gone.
    const { rows: found } = await sql`SELECT 1 FROM organizations WHERE id = ${organizationId} FOR KEY SHARE`.execute(trx)
    if (found.length === 0) return 'not_found' as const
    const { rows } = await sql<OrganizationRouteRow & { created: boolean }>`
      INSERT INTO organization_routes (identity, value, organization_id) VALUES (${identity}, ${value}, ${organizationId})
      ON CONFLICT (identity, value) DO UPDATE SET organization_id = excluded.organization_id, updated_at = now()
      RETURNING identity, value, organization_id, created_at, updated_at, (xmax = 0) AS created`.execute(trx)
    // The event's dedupe key moves with it (usage_event_keys: a request_id is unique within an organization).
    const { rows: [moved] } = await sql<{ moved: number }>`
      WITH moved AS (
        UPDATE litellm_usage_events e
           SET organization_id = ${organizationId},
               status = CASE WHEN e.status = 'not_billable' THEN 'not_billable'
                             WHEN e.customer_external_id = ${NO_CUSTOMER} THEN 'unmapped' ELSE 'pending' END,
               last_error = CASE WHEN e.status = 'not_billable' THEN e.last_error
                                 WHEN e.customer_external_id = ${NO_CUSTOMER}
                                 THEN jsonb_build_object('kind', 'unmapped', 'message', ${`routed to organization "${organizationId}" by LiteLLM ${identity} "${value}": waiting for a customer mapping there`}::text)
                                 ELSE NULL END,
               next_attempt_at = now()
         WHERE e.organization_id = ${UNROUTED_ORGANIZATION_ID} AND e.status IN ('unmapped', 'not_billable')
           AND e.metadata->'identities'->>${identity} = ${value}
           AND NOT EXISTS (SELECT 1 FROM usage_event_keys t WHERE t.organization_id = ${organizationId} AND t.request_id = e.request_id)
        RETURNING e.request_id
      ), rekeyed AS (
        UPDATE usage_event_keys k SET organization_id = ${organizationId}
          FROM moved WHERE k.organization_id = ${UNROUTED_ORGANIZATION_ID} AND k.request_id = moved.request_id
      )
      SELECT count(*)::int AS moved FROM moved`.execute(trx)
    const { created, ...row } = rows[0]
    return { row, created, moved: moved.moved }
  })
}

export async function deleteRoute (db: Kysely<Database>, identity: RouteIdentityKind, value: string): Promise<boolean> {
  const result = await db.deleteFrom('organization_routes').where('identity', '=', identity).where('value', '=', value).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}
