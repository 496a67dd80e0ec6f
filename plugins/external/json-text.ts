import type { FastifyBodyParser } from 'fastify'

/**
 * Python's json.dumps writes NaN, Infinity and -Infinity (allow_nan is on by default), and LiteLLM can emit them
 * (a cost it failed to compute). JSON.parse refuses them, which would reject a whole batch of 512 calls for one
 * bad float. Outside strings, such tokens become the strings "NaN", "Infinity" and "-Infinity", so the value
 * survives as a marker that the normalizers recognise. Returns null when there is nothing to replace.
 */
export function quoteNonFiniteNumbers (text: string): string | null {
  let out = ''
  let from = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92 /* \ */) i++
      else if (c === 34 /* " */) inString = false
      continue
    }
    if (c === 34) {
      inString = true
      continue
    }
    const token = c === 78 /* N */ && text.startsWith('NaN', i)
      ? 'NaN'
      : c === 73 /* I */ && text.startsWith('Infinity', i)
        ? 'Infinity'
        : c === 45 /* - */ && text.startsWith('-Infinity', i) ? '-Infinity' : null
    if (token === null) continue
    out += `${text.slice(from, i)}"${token}"`
    i += token.length - 1
    from = i + 1
  }
  return from === 0 ? null : out + text.slice(from)
}

/** A JSON body parser in Fastify's callback form (Fastify's own keeps its prototype-poisoning checks). */
export type JsonBodyParser = FastifyBodyParser<string>

/**
 * Wraps a JSON parser so that a body it refuses is tried once more with Python's NaN and Infinity quoted.
 * The first error is the one reported when that does not help. A valid body costs nothing extra.
 */
export function tolerantJsonParser (parse: JsonBodyParser): JsonBodyParser {
  return (request, text, done) => {
    parse(request, text, (err, value) => {
      if (err === null) return done(null, value)
      const quoted = quoteNonFiniteNumbers(text)
      if (quoted === null) return done(err)
      parse(request, quoted, (again, fixed) => { done(again === null ? null : err, fixed) })
    })
  }
}

/**
 * One JSON document, else newline-delimited JSON (LiteLLM's generic_api `ndjson` format is sent as
 * application/json, with no trailing newline): the lines as an array. Blank lines are ignored. When neither
 * reading works, the error of the single-document parse is reported, as for any JSON body. `parse` must answer
 * synchronously, as Fastify's own JSON parser does.
 */
export function jsonOrNdjsonParser (parse: JsonBodyParser): JsonBodyParser {
  const tolerant = tolerantJsonParser(parse)
  return (request, text, done) => {
    tolerant(request, text, (err, value) => {
      if (err === null) return done(null, value)
      const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0)
      if (lines.length < 2) return done(err)
      // A plain loop: Fastify's JSON parser answers synchronously, so stepping from line to line inside its
      // callback would grow the stack by a few frames per line and overflow on a batch of a couple of thousand.
      const values: unknown[] = []
      for (const line of lines) {
        let read = false
        tolerant(request, line, (lineErr, value) => {
          if (lineErr !== null) return
          read = true
          values.push(value)
        })
        if (!read) return done(err)
      }
      done(null, values)
    })
  }
}
