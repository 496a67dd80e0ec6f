import { sql, type RawBuilder } from 'kysely'

const MARK = '/* prepared */ '

/** Distinct marked texts at most; beyond, a statement runs unnamed (a marked text that varies would be a bug). */
const MAX_STATEMENTS = 64
const names = new Map<string, string>()

/**
 * Put first in a hot statement whose text is one of a few fixed ones: each connection then parses it once and,
 * after a few executions, plans it once (PostgreSQL's generic plan of a named prepared statement). Sent unnamed,
 * ingestion's insert was parsed and planned on every write (0.8 ms of PostgreSQL's 2.7 ms for a write of about 40
 * events), and the forwarder's claim and settle spent a sixth of their time in parse and bind.
 * Only for statements whose plan does not depend on the values: arrays unnested, rows found by key or through
 * PIN_INDEX_PLAN's index walks.
 */
export const PREPARED: RawBuilder<unknown> = sql.raw(MARK)

/**
 * The name of a statement marked PREPARED (one per distinct text, the same on every connection), or undefined.
 */
export function preparedName (text: string): string | undefined {
  if (!text.startsWith(MARK)) return undefined
  let name = names.get(text)
  if (name === undefined) {
    if (names.size >= MAX_STATEMENTS) return undefined
    name = `lai_${names.size + 1}`
    names.set(text, name)
  }
  return name
}

/** The statement without its mark. */
export const unmarked = (text: string): string => text.startsWith(MARK) ? text.slice(MARK.length) : text
