import t from 'tap'
import { sql } from 'kysely'
import { migrateToLatest } from '../../db/migrator.js'
import { scratchDatabase } from '../helpers/scratch-database.js'

// migrateToLatest answers an up-to-date database with one query instead of running Kysely's migrator (the
// service's start); everything else still goes through the migrator.
t.test('an up-to-date database: nothing applied; a history the folder does not have: still refused', async (t) => {
  const { db, migrator } = await scratchDatabase(t, 'lai_uptodate')
  const all = (await migrator.getMigrations()).map((m) => m.name)
  const first = await migrateToLatest(db)
  t.same(first.results?.map((r) => r.migrationName), all, 'a fresh database gets every migration')
  t.same(await migrateToLatest(db), { results: [] }, 'then nothing to do')

  await sql`INSERT INTO kysely_migration (name, "timestamp") VALUES ('9999_not_in_the_folder', ${new Date().toISOString()})`.execute(db)
  await t.rejects(migrateToLatest(db), /previously executed migration 9999_not_in_the_folder is missing/, 'the migrator still reports a corrupted history')
})
