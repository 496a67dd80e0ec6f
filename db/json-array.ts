import { sql, type RawBuilder } from 'kysely'

/**
 * A jsonb[] from one JSON array parameter, in order, a JSON null element as SQL NULL: JSON.stringify once, where a
 * jsonb[] parameter had pg escape every quote of every document into an array literal (a twentieth of the service's
 * CPU under generic_api batches) and PostgreSQL read each document twice.
 */
export const jsonbArray = (documents: unknown[]): RawBuilder<unknown> =>
  sql`ARRAY(SELECT nullif(d, 'null') FROM jsonb_array_elements(${JSON.stringify(documents)}::jsonb) WITH ORDINALITY AS x(d, o) ORDER BY o)`
