import { sql, type Kysely } from 'kysely'

// Migration 1800 made the received_at index a BRIN index, counting on the heap being in received_at order. It is
// not, once the forwarder runs: each event gets three row versions, vacuum hands the freed space of the month's pages
// to new inserts, and every block range's maximum becomes "now". "The last minute" and the stats' partial hour then
// read the whole month through lossy bitmaps (a probe: 11,005 heap blocks and 373,382 rows rechecked for 101 rows,
// 134 ms; 0.3 ms with a B-tree). Every reader of a received_at range also names its organization, so the B-tree
// is (organization_id, received_at). The forwarder's settles, which look events up by (id, received_at) and never
// by organization, cannot use it in place of the primary key: a B-tree on received_at alone let PostgreSQL read a
// whole group commit for each event (see migration 1800). Frozen in time: Kysely<any>, no application imports.
const TABLE = 'litellm_usage_events'
const BRIN_INDEX = 'litellm_usage_events_received_at_idx'
const INDEX = 'litellm_usage_events_organization_received_at_idx'

export async function up (db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX ${sql.id(INDEX)} ON ${sql.id(TABLE)} (organization_id, received_at)`.execute(db)
  await sql`DROP INDEX ${sql.id(BRIN_INDEX)}`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX ${sql.id(BRIN_INDEX)} ON ${sql.id(TABLE)} USING brin (received_at)`.execute(db)
  await sql`DROP INDEX ${sql.id(INDEX)}`.execute(db)
}
