import { Ajv, type AnySchema, type Options, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { findTextProblem } from './text.js'

// allErrors stays off: with it, a crafted body can make validation expensive (Fastify's own advice).
// discriminator: a oneOf tagged by a property (a plan charge's charge_model) reports only the errors of the
// branch the tag names. verbose: errors carry their schema, whose `errorMessage` (if any) replaces Ajv's words.
// strictNumbers: `strict: false` would let Infinity (JSON 1e309) and NaN pass as numbers; they are never valid.
const common: Options = { useDefaults: true, allErrors: false, strict: false, strictNumbers: true, discriminator: true, verbose: true }

/**
 * Bodies: no type coercion ("12" is not a token count) and additional properties are kept, not stripped, so
 * that a strict schema (additionalProperties: false) rejects them with a message instead of silently dropping.
 */
export const bodyAjv = addFormats.default(new Ajv({ ...common, coerceTypes: false, removeAdditional: false }))

/** Params and headers are text by nature: coerced to the schema's types. */
export const textAjv = addFormats.default(new Ajv({ ...common, coerceTypes: 'array', removeAdditional: true }))

/** Query strings: coerced like params, but an unknown parameter is refused (a typo must not silently drop a filter). */
export const queryAjv = addFormats.default(new Ajv({ ...common, coerceTypes: 'array', removeAdditional: false }))

/** A body validator: the schema, then the text (findTextProblem: no NUL, no lone surrogate, bounded nesting). */
export interface BodyValidator<T> {
  (data: unknown): data is T
  errors: Array<{ instancePath: string, message?: string, params?: Record<string, unknown>, parentSchema?: unknown }> | null
}

/** Validates items of a batch one by one, as the routes' own body validation would (see plugins/external/input-guards.ts). */
export function compileBodyValidator<T> (schema: AnySchema): BodyValidator<T> {
  // Compiled on first use, as the routes' own validators are (app.ts): not while the service starts.
  let validate: ValidateFunction<T> | undefined
  const check = ((data: unknown): data is T => {
    validate ??= bodyAjv.compile<T>(schema)
    if (!validate(data)) {
      check.errors = validate.errors ?? []
      return false
    }
    const problem = findTextProblem(data)
    check.errors = problem === undefined ? null : [{ instancePath: problem.field, message: problem.message }]
    return problem === undefined
  }) as BodyValidator<T>
  check.errors = null
  return check
}

/** Turns an Ajv error list into `{ field, message }` pairs naming the JSON path of each bad field. */
export function validationDetails (errors: ReadonlyArray<{ instancePath: string, message?: string, params?: Record<string, unknown>, parentSchema?: unknown }>): Array<{ field: string, message: string }> {
  return errors.map((e) => {
    const missing = e.params?.missingProperty
    const extra = e.params?.additionalProperty
    const field = typeof missing === 'string'
      ? `${e.instancePath}/${missing}`
      : typeof extra === 'string' ? `${e.instancePath}/${extra}` : (e.instancePath === '' ? '/' : e.instancePath)
    const custom = (e.parentSchema as { errorMessage?: unknown } | undefined)?.errorMessage
    const message = typeof missing === 'string'
      ? 'is required'
      : typeof extra === 'string' ? 'is not an allowed property' : typeof custom === 'string' ? custom : (e.message ?? 'is invalid')
    return { field, message }
  })
}
