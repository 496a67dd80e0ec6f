/**
 * Text that PostgreSQL cannot store. A NUL character is refused by text columns and by jsonb (as \u0000); a lone
 * UTF-16 surrogate ("\udc00") is refused by jsonb and silently turned into U+FFFD in text columns. Either one in a
 * multi-row insert fails the whole statement, so it is caught before any SQL: ids and keys are refused (400, the
 * field named), free text a caller cannot be trusted to get right is made well-formed (see wellFormedText).
 */

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const LONE_SURROGATES = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/** What is wrong with a string for storage, for a person; undefined when it can be stored as is. */
export function textFault (s: string): string | undefined {
  if (s.includes('\u0000')) return 'holds a NUL character (\\u0000), which cannot be stored'
  if (LONE_SURROGATE.test(s)) return 'holds a lone UTF-16 surrogate (not valid Unicode), which cannot be stored'
  return undefined
}

/** The string with each NUL and lone surrogate replaced by U+FFFD (the Unicode replacement character). */
export function wellFormedText (s: string): string {
  if (!s.includes('\u0000') && !LONE_SURROGATE.test(s)) return s
  return s.replaceAll('\u0000', '\uFFFD').replace(LONE_SURROGATES, '\uFFFD')
}

/** Deeper than this, a JSON value is refused: nothing here nests that deep, and walking it costs stack. */
export const MAX_JSON_DEPTH = 32

export interface TextProblem { field: string, message: string }

const pointer = (path: string, key: string | number): string => `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`

/** A value still to look at, and how to name it: its key under its parent (the pointer is built only for a problem). */
interface Pending { value: unknown, depth: number, parent: Pending | undefined, key: string | number }

function pathOf (root: string, at: Pending): string {
  const keys: Array<string | number> = []
  for (let p: Pending | undefined = at; p?.parent !== undefined; p = p.parent) keys.push(p.key)
  let path = root
  for (let i = keys.length - 1; i >= 0; i--) path = pointer(path, keys[i])
  return path === '' ? '/' : path
}

/**
 * The first string (value or object key) in a JSON value that cannot be stored, as a JSON pointer and a reason;
 * also refuses nesting deeper than MAX_JSON_DEPTH. Iterative, so a hostile depth cannot overflow the stack. It runs
 * on every ingested event: no pointer is built unless there is a problem to name.
 */
export function findTextProblem (value: unknown, root = ''): TextProblem | undefined {
  const stack: Pending[] = [{ value, depth: 0, parent: undefined, key: '' }]
  while (stack.length > 0) {
    const at = stack.pop() as Pending
    const v = at.value
    if (typeof v === 'string') {
      const fault = textFault(v)
      if (fault !== undefined) return { field: pathOf(root, at), message: fault }
      continue
    }
    if (typeof v !== 'object' || v === null) continue
    if (at.depth >= MAX_JSON_DEPTH) return { field: pathOf(root, at), message: `is nested deeper than ${MAX_JSON_DEPTH} levels` }
    // Pushed in reverse so that the first problem in document order is the one found first.
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], depth: at.depth + 1, parent: at, key: i })
      continue
    }
    const keys = Object.keys(v)
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]
      const fault = textFault(key)
      // The parent is named: the key itself is what cannot be shown or stored.
      if (fault !== undefined) return { field: pathOf(root, at), message: `has a key that ${fault}` }
      stack.push({ value: (v as Record<string, unknown>)[key], depth: at.depth + 1, parent: at, key })
    }
  }
  return undefined
}

/**
 * A copy of a JSON value whose strings and keys are all well-formed (wellFormedText), cut at `maxDepth` (deeper
 * values become a marker). For free-form attributes that are kept for the record, never used as keys.
 */
export function wellFormedJson (value: unknown, maxDepth = MAX_JSON_DEPTH, depth = 0): unknown {
  if (typeof value === 'string') return wellFormedText(value)
  if (typeof value !== 'object' || value === null) return value
  if (depth >= maxDepth) return '[nested too deep]'
  if (Array.isArray(value)) return value.map((v) => wellFormedJson(v, maxDepth, depth + 1))
  // fromEntries defines own properties: a "__proto__" key stays a plain key.
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [wellFormedText(k), wellFormedJson(v, maxDepth, depth + 1)]))
}

/** Whether a JSON value nests deeper than `max` levels (iterative: a hostile depth cannot overflow the stack). */
export function nestedDeeperThan (value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: Array<{ value: unknown, depth: number }> = [{ value, depth: 0 }]
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop() as { value: unknown, depth: number }
    if (typeof v !== 'object' || v === null) continue
    if (depth >= max) return true
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push({ value: item, depth: depth + 1 })
  }
  return false
}
