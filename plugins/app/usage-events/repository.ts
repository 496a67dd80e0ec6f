import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database, type UsageEventStatus, type UsageEventTable } from '../../../db/database.js'
import { PIN_INDEX_PLAN } from '../../../db/plans.js'
import { PREPARED } from '../../../db/prepared.js'
import { jsonbArray } from '../../../db/json-array.js'
import type { UsageEvent } from './normalize.js'

/** What became of an event that reached the table. */
export type StoredOutcome =
  | { status: 'accepted', id: number }
  | { status: 'duplicate', id: number }
  | { status: 'conflict', id: number }

/** Not stored: it holds what cannot be stored (the field, in usage-event terms, and why). */
export interface RejectedOutcome { status: 'rejected', field: string, message: string }

export type WriteOutcome = StoredOutcome | RejectedOutcome

/** A stored event with one of the LiteLLM call ids of a write. */
type KnownCall = Pick<Selectable<UsageEventTable>, 'id' | 'organization_id' | 'request_id' | 'fingerprint' | 'litellm_id' | 'litellm_call_id' | 'timestamp'>

interface InsertResultRow {
  ord: number
  id: number | null
  existing_id: number | null
  existing_fingerprint: string | null
  /** The event's organization does not exist (deleted before this write could lock it): nothing stored. */
  organization_gone: boolean
}

/**
 * Whether two events are one LiteLLM call seen twice (through two formats, or a callback fired twice): same
 * litellmId, call ids that do not disagree, and timestamps within the match window when there is one.
 */
export function sameLiteLLMCall (a: Pick<UsageEvent, 'organizationId' | 'litellmId' | 'litellmCallId' | 'matchWindowMs' | 'timestamp'>, b: Pick<UsageEvent, 'organizationId' | 'litellmId' | 'litellmCallId' | 'matchWindowMs' | 'timestamp'>): boolean {
  if (a.litellmId === undefined || a.litellmId !== b.litellmId) return false
  // One call belongs to one organization: the same id in two organizations is two calls.
  if ((a.organizationId ?? DEFAULT_ORGANIZATION_ID) !== (b.organizationId ?? DEFAULT_ORGANIZATION_ID)) return false
  if (a.litellmCallId !== undefined && b.litellmCallId !== undefined && a.litellmCallId !== b.litellmCallId) return false
  const window = a.matchWindowMs ?? b.matchWindowMs
  return window === undefined || Math.abs(a.timestamp.getTime() - b.timestamp.getTime()) <= window
}

/**
 * Stores events with one multi-row INSERT (a single statement: one commit for all of them) and says, per event,
 * whether it was new, a harmless resend (same request_id, same billing content; or the same LiteLLM call as a
 * stored event) or a conflicting reuse. Input arrays go through unnest, so the statement text is the same
 * whatever the row count.
 *
 * Events carrying a LiteLLM call id are written in a transaction that first takes advisory locks on those ids
 * and looks the ids up (one indexed query, whatever the planner's statistics say), so two formats delivering one
 * call at the same moment still store it once. Writes without such ids skip all of that.
 */
export async function insertUsageEvents (db: Kysely<Database>, events: UsageEvent[]): Promise<WriteOutcome[]> {
  // The same request_id (or the same LiteLLM call) twice in one write: store the first, judge the others
  // against it.
  const firstIndex = new Map<string, number>()
  const unique: UsageEvent[] = []
  // Indexes into unique (ascending) per litellmId: sameLiteLLMCall never matches across litellmIds.
  const uniqueByCall = new Map<string, number[]>()
  const uniqueIndexOf: number[] = []
  const sameCallAs: number[] = []
  for (const [i, e] of events.entries()) {
    const seen = firstIndex.get(requestKey(e))
    if (seen !== undefined) {
      uniqueIndexOf[i] = -1 - seen
      continue
    }
    const candidates = e.litellmId !== undefined ? uniqueByCall.get(e.litellmId) : undefined
    const call = candidates?.find((u) => sameLiteLLMCall(unique[u], e)) ?? -1
    if (call >= 0) {
      uniqueIndexOf[i] = -1 - call
      sameCallAs[i] = call
      continue
    }
    firstIndex.set(requestKey(e), unique.length)
    uniqueIndexOf[i] = unique.length
    if (e.litellmId !== undefined) {
      if (candidates === undefined) uniqueByCall.set(e.litellmId, [unique.length])
      else candidates.push(unique.length)
    }
    unique.push(e)
  }

  const calls = [...uniqueByCall.keys()].sort()
  const outcomes: WriteOutcome[] = new Array(unique.length)
  const stored: string[] = new Array(unique.length)
  if (calls.length === 0) {
    await insertUnique(db, unique, unique.map((_, i) => i), outcomes, stored)
  } else {
    await db.transaction().execute(async (trx) => {
      // In a fixed order, so that two writes sharing calls never wait on each other crosswise.
      await sql`SELECT pg_advisory_xact_lock(hashtextextended('litellm-call:' || c, 0))
                  FROM unnest(${calls}::text[]) WITH ORDINALITY AS t(c, o) ORDER BY o`.execute(trx)
      // One index probe per call id (a nested loop: OFFSET 0 keeps the lookup from being flattened into a join). As
      // `litellm_id = ANY(...)` on a month not yet analyzed, PostgreSQL scanned the whole month for every write. The
      // pin holds for the rest of this transaction, but the INSERT below is also run without it (writes without call
      // ids), and its prepared plan is whichever was made first: it does not need the pin, reading its input, the
      // organizations and the key table's primary keys and, in its counting triggers, primary keys and transition tables.
      await PIN_INDEX_PLAN.execute(trx)
      const { rows: known } = await sql<KnownCall>`${PREPARED}
        SELECT e.* FROM unnest(${calls}::text[]) AS c(litellm_id)
         CROSS JOIN LATERAL (SELECT id, organization_id, request_id, fingerprint, litellm_id, litellm_call_id, "timestamp"
                               FROM litellm_usage_events WHERE litellm_id = c.litellm_id OFFSET 0) AS e
         ORDER BY e.id`.execute(trx)
      // Grouped by litellm_id, each group in id order (rows without one can never match).
      const knownByCall = new Map<string, typeof known>()
      for (const k of known) {
        if (k.litellm_id === null) continue
        const group = knownByCall.get(k.litellm_id)
        if (group === undefined) knownByCall.set(k.litellm_id, [k])
        else group.push(k)
      }
      const fresh: number[] = []
      for (const [i, e] of unique.entries()) {
        const match = e.litellmId === undefined
          ? undefined
          : knownByCall.get(e.litellmId)?.find((k) => sameLiteLLMCall(e, { organizationId: k.organization_id, litellmId: k.litellm_id ?? undefined, litellmCallId: k.litellm_call_id ?? undefined, timestamp: k.timestamp }))
        if (match === undefined) {
          fresh.push(i)
        } else if (match.request_id === e.requestId) {
          stored[i] = match.fingerprint
          outcomes[i] = { status: e.fingerprint === match.fingerprint ? 'duplicate' : 'conflict', id: match.id }
        } else {
          // The same call under another key (another format): stored once, whatever the representation.
          outcomes[i] = { status: 'duplicate', id: match.id }
          stored[i] = e.fingerprint
        }
      }
      await insertUnique(trx, fresh.map((i) => unique[i]), fresh, outcomes, stored)
    })
  }

  return events.map((e, i) => {
    const u = uniqueIndexOf[i]
    if (u >= 0) return outcomes[u]
    const first = outcomes[-1 - u]
    // A repeat of an event not stored is not stored either.
    if (first.status === 'rejected') return first
    if (sameCallAs[i] !== undefined) return { status: 'duplicate', id: first.id }
    return { status: e.fingerprint === stored[-1 - u] ? 'duplicate' : 'conflict', id: first.id }
  })
}

/** An event's identity for deduplication: its request_id within its organization. */
const requestKey = (e: UsageEvent): string => `${e.organizationId ?? DEFAULT_ORGANIZATION_ID}\u0000${e.requestId}`

/** An event whose organization was deleted (purged) before its write could lock it. */
const ORGANIZATION_GONE: RejectedOutcome = { status: 'rejected', field: '/', message: 'cannot be stored: its organization was deleted while it was being written' }

/**
 * The INSERT of events with distinct request_ids; fills outcomes[at[k]] and stored[at[k]] (the fingerprint of the
 * row now stored) for each rows[k].
 */
async function insertUnique (db: Kysely<Database>, rows: UsageEvent[], at: number[], outcomes: WriteOutcome[], stored: string[]): Promise<void> {
  if (rows.length === 0) return
  const col = <T>(pick: (e: UsageEvent) => T): T[] => rows.map(pick)
  const { rows: results } = await sql<InsertResultRow>`${PREPARED}
    WITH input AS (
      SELECT * FROM unnest(
        ${col((e) => e.organizationId ?? DEFAULT_ORGANIZATION_ID)}::text[], ${col((e) => e.requestId)}::text[], ${col((e) => e.customerExternalId)}::text[], ${col((e) => e.model)}::text[],
        ${col((e) => e.provider)}::text[], ${col((e) => e.eventType)}::text[], ${col((e) => e.tokensInput)}::bigint[],
        ${col((e) => e.tokensOutput)}::bigint[], ${col((e) => e.totalTokens)}::bigint[], ${col((e) => e.costUsd)}::numeric[],
        ${col((e) => e.apiKeyHash)}::text[], ${col((e) => e.timestamp.toISOString())}::timestamptz[], ${col((e) => e.source)}::text[],
        ${col((e) => e.fingerprint)}::text[], ${jsonbArray(rows.map((e) => e.metadata))},
        ${col((e) => e.hold?.kind ?? 'pending')}::text[], ${jsonbArray(rows.map((e) => e.hold ?? null))},
        ${col((e) => e.litellmId ?? null)}::text[], ${col((e) => e.litellmCallId ?? null)}::text[]
      ) WITH ORDINALITY AS t(organization_id, request_id, customer_external_id, model, provider, event_type, tokens_input, tokens_output,
                             total_tokens, cost_usd, api_key_hash, "timestamp", source, fingerprint, metadata,
                             status, last_error, litellm_id, litellm_call_id, ord)
    ), organization AS (
      -- The write's organizations, locked as a foreign key's check would lock them, but once per write, not per event:
      -- a purge (which locks its organization FOR UPDATE first) waits for this write, or this write for the purge and
      -- then finds no row. Only the events of an organization found here are stored.
      SELECT id FROM organizations WHERE id IN (SELECT organization_id FROM input) FOR KEY SHARE
    ), keyed AS (
      -- The dedupe key first (usage_event_keys, unpartitioned: unique for ever); the event only for a key it created.
      INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint)
      SELECT organization_id, request_id, nextval('litellm_usage_events_id_seq'), fingerprint
        FROM input WHERE organization_id IN (SELECT id FROM organization) ORDER BY ord
      ON CONFLICT (organization_id, request_id) DO NOTHING
      RETURNING organization_id, request_id, event_id
    ), inserted AS (
      INSERT INTO litellm_usage_events (id, organization_id, request_id, customer_external_id, model, provider, event_type, tokens_input,
                                        tokens_output, total_tokens, cost_usd, api_key_hash, "timestamp", source, fingerprint,
                                        metadata, status, last_error, litellm_id, litellm_call_id)
      OVERRIDING SYSTEM VALUE
      SELECT keyed.event_id, input.organization_id, input.request_id, customer_external_id, model, provider, event_type, tokens_input,
             tokens_output, total_tokens, cost_usd, api_key_hash, "timestamp", source, fingerprint, metadata, status, last_error,
             litellm_id, litellm_call_id
        FROM input JOIN keyed ON keyed.organization_id = input.organization_id AND keyed.request_id = input.request_id
       ORDER BY input.ord
      RETURNING id, organization_id, request_id
    )
    SELECT input.ord::int AS ord, inserted.id, existing.event_id AS existing_id, existing.fingerprint AS existing_fingerprint,
           input.organization_id NOT IN (SELECT id FROM organization) AS organization_gone
      FROM input
      LEFT JOIN inserted ON inserted.organization_id = input.organization_id AND inserted.request_id = input.request_id
      -- A lateral lookup with LIMIT: a nested loop over the key index run only for rows not inserted. As a plain
      -- join, on a table not yet analyzed PostgreSQL hashed the whole key table for every write.
      LEFT JOIN LATERAL (SELECT k.event_id, k.fingerprint FROM usage_event_keys k
                          WHERE inserted.id IS NULL AND k.organization_id = input.organization_id AND k.request_id = input.request_id
                          LIMIT 1) AS existing ON true
  `.execute(db)

  const settle = (k: number, id: number, fingerprint: string): void => {
    stored[at[k]] = fingerprint
    outcomes[at[k]] = { status: rows[k].fingerprint === fingerprint ? 'duplicate' : 'conflict', id }
  }
  const unseen: number[] = []
  for (const row of results) {
    const k = row.ord - 1
    if (row.organization_gone) {
      outcomes[at[k]] = ORGANIZATION_GONE
    } else if (row.id !== null) {
      outcomes[at[k]] = { status: 'accepted', id: row.id }
      stored[at[k]] = rows[k].fingerprint
    } else if (row.existing_id !== null && row.existing_fingerprint !== null) {
      settle(k, row.existing_id, row.existing_fingerprint)
    } else {
      unseen.push(k)
    }
  }
  // Inserted by a transaction that committed after this statement's snapshot: look again.
  if (unseen.length > 0) {
    const existing = await db.selectFrom('usage_event_keys').select(['event_id as id', 'organization_id', 'request_id', 'fingerprint'])
      .where('organization_id', 'in', [...new Set(unseen.map((k) => rows[k].organizationId ?? DEFAULT_ORGANIZATION_ID))])
      .where('request_id', 'in', unseen.map((k) => rows[k].requestId)).execute()
    const byRequestId = new Map(existing.map((r) => [requestKey({ organizationId: r.organization_id, requestId: r.request_id } as UsageEvent), r]))
    for (const k of unseen) {
      const row = byRequestId.get(requestKey(rows[k]))
      if (row === undefined) throw new Error(`usage event ${rows[k].requestId} was neither inserted nor found`)
      settle(k, row.id, row.fingerprint)
    }
  }
}

export interface StatusCountRow { source: string, status: UsageEventStatus, total: number, last_24h: number }

/** The start of the first whole UTC hour of the last 24 hours. */
const WHOLE_HOURS = sql`(date_trunc('hour', now() - interval '24 hours', 'UTC') + interval '1 hour')`

/**
 * One organization's totals from usage_event_counts and its last 24 hours from usage_event_hourly_counts (both kept
 * by triggers): the whole hours inside the window from the hourly counts, the partial hour at its start counted from
 * the events (the received_at index). Exact, and its cost grows with an hour's events at most, not with the table or
 * a day's traffic.
 */
export async function countByStatus (db: Kysely<Database>, organization: string): Promise<StatusCountRow[]> {
  return (await countByStatusQuery(organization).execute(db)).rows
}

/** countByStatus's statement (its plan is tested). */
export function countByStatusQuery (organization: string): RawBuilder<StatusCountRow> {
  return sql<StatusCountRow>`
    WITH totals AS (
      SELECT source, status, sum(events)::int AS total FROM usage_event_counts
       WHERE organization_id = ${organization} GROUP BY source, status
    ), recent AS (
      SELECT source, status, sum(n)::int AS last_24h FROM (
        SELECT source, status, events AS n FROM usage_event_hourly_counts
         WHERE organization_id = ${organization} AND hour >= ${WHOLE_HOURS}
        UNION ALL
        -- Written out, not joined from a CTE: the bounds must be known when the plan starts, to prune the months
        -- and bound the received_at index scan.
        SELECT source, status, 1 FROM litellm_usage_events
         WHERE received_at > now() - interval '24 hours' AND received_at < ${WHOLE_HOURS} AND organization_id = ${organization}
      ) AS counted GROUP BY source, status
    )
    SELECT coalesce(t.source, r.source) AS source, coalesce(t.status, r.status) AS status,
           coalesce(t.total, 0) AS total, coalesce(r.last_24h, 0) AS last_24h
      FROM totals t FULL JOIN recent r ON r.source = t.source AND r.status = t.status
     WHERE coalesce(t.total, 0) <> 0 OR coalesce(r.last_24h, 0) <> 0`
}

/** Most recent unmapped events whose reasons are tallied: the stats must not read every event ever left unmapped. */
export const UNMAPPED_REASONS_SAMPLE = 1000

/**
 * Why an organization's events wait as unmapped, most frequent first, among the UNMAPPED_REASONS_SAMPLE most recent
 * of them (the (organization_id, status, id) problems index read backwards: its cost does not grow with the table,
 * the unmapped backlog, or other organizations' problems).
 */
export async function unmappedReasons (db: Kysely<Database>, organization: string, limit = 10): Promise<Array<{ reason: string, events: number }>> {
  const { rows } = await sql<{ reason: string, events: number }>`
    SELECT coalesce(last_error->>'message', 'unknown') AS reason, count(*)::int AS events
      FROM (SELECT last_error FROM litellm_usage_events WHERE organization_id = ${organization} AND status = 'unmapped'
             ORDER BY id DESC LIMIT ${UNMAPPED_REASONS_SAMPLE}) AS recent
     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${limit}`.execute(db)
  return rows
}

/**
 * Age of the oldest event not yet in Lago, in seconds (of one organization, else of any); null when nothing waits.
 * Each organization's is the first entry of its unsent index (the first event in id order); of all organizations,
 * the oldest of those: one index probe per organization and month.
 */
export async function oldestUnsentAgeSeconds (db: Kysely<Database>, organization?: string): Promise<number | null> {
  const { rows } = await sql<{ age: number | null }>`
    SELECT extract(epoch FROM now() - min(first.received_at))::float8 AS age
      FROM ${organization !== undefined ? sql`(SELECT ${organization}::text AS id)` : sql`organizations`} AS o
     CROSS JOIN LATERAL (SELECT received_at FROM litellm_usage_events
                          WHERE organization_id = o.id AND status IN ('pending', 'failed') ORDER BY organization_id, id LIMIT 1) AS first`.execute(db)
  return rows[0]?.age ?? null
}

/** Events not yet in Lago (pending or awaiting a retry), of every organization: from the trigger-kept counts. */
export async function countUnsent (db: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT coalesce(sum(events), 0)::int AS n FROM usage_event_counts WHERE status IN ('pending', 'failed')`.execute(db)
  return rows[0].n
}

export async function receivedInLastMinute (db: Kysely<Database>, organization: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM litellm_usage_events
     WHERE received_at > now() - interval '1 minute' AND organization_id = ${organization}`.execute(db)
  return rows[0].n
}
