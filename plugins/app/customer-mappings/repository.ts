import { sql, type Kysely, type Selectable } from 'kysely'
import type { CustomerMappingTable, Database, IdentityKind } from '../../../db/database.js'
import { NO_CUSTOMER } from '../usage-events/normalize.js'
import { UNROUTED_ORGANIZATION_ID } from '../organizations/repository.js'

export type CustomerMappingRow = Selectable<CustomerMappingTable>

export async function loadMappings (db: Kysely<Database>): Promise<CustomerMappingRow[]> {
  return await db.selectFrom('customer_mappings').selectAll().execute()
}

/** Changes whenever a mapping is added, changed or removed (any instance): cheap to poll. */
export async function mappingsVersion (db: Kysely<Database>): Promise<string> {
  const { rows } = await sql<{ v: string }>`
    SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') AS v FROM customer_mappings`.execute(db)
  return rows[0].v
}

/** One organization's mappings, filtered. */
export interface MappingQuery { organizationId: string, identity?: IdentityKind, value?: string, customerId?: string, limit: number, offset: number }

export async function listMappings (db: Kysely<Database>, q: MappingQuery): Promise<{ rows: CustomerMappingRow[], total: number }> {
  let query = db.selectFrom('customer_mappings').where('organization_id', '=', q.organizationId)
  if (q.identity !== undefined) query = query.where('identity', '=', q.identity)
  if (q.value !== undefined) query = query.where('value', '=', q.value)
  if (q.customerId !== undefined) query = query.where('customer_external_id', '=', q.customerId)
  const [rows, count] = await Promise.all([
    query.selectAll().orderBy('identity').orderBy('value').limit(q.limit).offset(q.offset).execute(),
    query.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  ])
  return { rows, total: Number(count.n) }
}

/** One organization's mapping of an identity and value (unique per organization), if there is one. */
export async function getMapping (db: Kysely<Database>, organizationId: string, identity: IdentityKind, value: string): Promise<CustomerMappingRow | undefined> {
  return await db.selectFrom('customer_mappings').selectAll()
    .where('organization_id', '=', organizationId).where('identity', '=', identity).where('value', '=', value).executeTakeFirst()
}

/** Creates or replaces one mapping of an organization; says whether it existed. */
export async function upsertMapping (db: Kysely<Database>, organizationId: string, identity: IdentityKind, value: string, customerId: string): Promise<{ row: CustomerMappingRow, created: boolean }> {
  const { rows } = await sql<CustomerMappingRow & { created: boolean }>`
    INSERT INTO customer_mappings (organization_id, identity, value, customer_external_id) VALUES (${organizationId}, ${identity}, ${value}, ${customerId})
    ON CONFLICT (organization_id, identity, value) DO UPDATE SET customer_external_id = excluded.customer_external_id, updated_at = now()
    RETURNING organization_id, identity, value, customer_external_id, created_at, updated_at, (xmax = 0) AS created`.execute(db)
  const { created, ...row } = rows[0]
  return { row, created }
}

export async function deleteMapping (db: Kysely<Database>, organizationId: string, identity: IdentityKind, value: string): Promise<boolean> {
  const result = await db.deleteFrom('customer_mappings')
    .where('organization_id', '=', organizationId).where('identity', '=', identity).where('value', '=', value).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

export interface ParkedCall {
  id: number
  organization_id: string
  metadata: Record<string, unknown>
  tokens_input: number
  tokens_output: number
  total_tokens: number
  cost_usd: string
}

/**
 * Stored calls that name no customer yet (unmapped, or failed and kept for the record), by id: of one organization,
 * or of all. Never the unrouted organization's: which customer pays depends on the organization a route gives them.
 */
export async function parkedCalls (db: Kysely<Database>, afterId: number, limit: number, organizationId?: string): Promise<ParkedCall[]> {
  let query = db.selectFrom('litellm_usage_events')
    .select(['id', 'organization_id', 'metadata', 'tokens_input', 'tokens_output', 'total_tokens', 'cost_usd'])
    .where('customer_external_id', '=', NO_CUSTOMER).where('status', 'in', ['unmapped', 'not_billable'])
    .where('organization_id', '<>', UNROUTED_ORGANIZATION_ID)
  if (organizationId !== undefined) query = query.where('organization_id', '=', organizationId)
  return await query.where('id', '>', afterId).orderBy('id').limit(limit).execute()
}

export interface CustomerAssignment { id: number, customer: string, via: string, fingerprint: string }

/** Gives parked calls their customer: unmapped ones go to the forwarding queue, failed ones stay not billable. */
export async function assignCustomers (db: Kysely<Database>, assignments: CustomerAssignment[]): Promise<number> {
  if (assignments.length === 0) return 0
  const { rows } = await sql<{ status: string }>`
    UPDATE litellm_usage_events e
       SET customer_external_id = a.customer,
           fingerprint = a.fingerprint,
           metadata = e.metadata || jsonb_build_object('customer_from', a.via),
           status = CASE WHEN e.status = 'unmapped' THEN 'pending' ELSE e.status END,
           last_error = CASE WHEN e.status = 'unmapped' THEN NULL ELSE e.last_error END,
           next_attempt_at = now()
      FROM unnest(${assignments.map((a) => a.id)}::bigint[], ${assignments.map((a) => a.customer)}::text[],
                  ${assignments.map((a) => a.via)}::text[], ${assignments.map((a) => a.fingerprint)}::text[]) AS a(id, customer, via, fingerprint)
     WHERE e.id = a.id AND e.customer_external_id = ${NO_CUSTOMER}
    RETURNING e.status`.execute(db)
  return rows.filter((r) => r.status === 'pending').length
}
