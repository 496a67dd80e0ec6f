import { sql } from 'kysely'

/**
 * Run first in a transaction whose statements must read only their own rows, by index, whatever the statistics say
 * (set for that transaction only). Planned from statistics taken before a burst, PostgreSQL chose otherwise:
 * - the forwarder's claim (which walks the partial index of unsent events in id order and stops after `limit` rows)
 *   became a bitmap scan and a sort of the whole backlog: 1.5 s per claim at 850,000 unsent events, against 2 ms
 *   for the index walk, and a 100,000-event drain at half its speed;
 * - settling 100 events (by primary key) on a month not yet analyzed read all 30,000 unsent events of the month (a
 *   sequential scan, a hash of the partial index): the same drain at a fifth of its speed;
 * - ingestion's lookup of 512 LiteLLM call ids became a parallel sequential scan of the month, compiled by JIT.
 * JIT is off: from such statistics PostgreSQL estimated 110,000 rows for 100 ids, passed jit_above_cost and spent
 * 43 ms compiling each claim and settle of 100 events (a 1,000,000-event backlog drained at 1,365 events/s).
 */
export const PIN_INDEX_PLAN = sql`SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true),
  set_config('jit', 'off', true)`
