import t from 'tap'
import { findTextProblem, MAX_JSON_DEPTH } from '../../schemas/text.js'

const NUL = '\u0000'
const LONE = '\udc00'
const NUL_FAULT = 'holds a NUL character (\\u0000), which cannot be stored'
const LONE_FAULT = 'holds a lone UTF-16 surrogate (not valid Unicode), which cannot be stored'

// Expected pointers written by hand (RFC 6901: "~" is "~0", "/" is "~1").
t.test('findTextProblem names the first value or key that cannot be stored by its JSON pointer', async (t) => {
  const cases: Array<[string, unknown, string, { field: string, message: string } | undefined]> = [
    ['clean nested value', { a: [1, 'x', { b: null, c: true }], d: 'e' }, '', undefined],
    ['a string alone', `x${NUL}`, '', { field: '/', message: NUL_FAULT }],
    ['a value under the root given', { team: `t${NUL}` }, '/metadata', { field: '/metadata/team', message: NUL_FAULT }],
    ['an array item', { tags: ['ok', 'ok', LONE] }, '', { field: '/tags/2', message: LONE_FAULT }],
    ['escaped keys', { 'a/b': { 'c~d': [`${NUL}`] } }, '/m', { field: '/m/a~1b/c~0d/0', message: NUL_FAULT }],
    ['the first in document order', { first: { deep: `${LONE}` }, second: `${NUL}` }, '', { field: '/first/deep', message: LONE_FAULT }],
    ['a key names its parent', { outer: { [`k${NUL}`]: 1 } }, '', { field: '/outer', message: `has a key that ${NUL_FAULT}` }],
    ['a key at the root', { [`k${LONE}`]: 1 }, '', { field: '/', message: `has a key that ${LONE_FAULT}` }]
  ]
  for (const [name, value, root, expected] of cases) t.same(findTextProblem(value, root), expected, name)
})

t.test('findTextProblem refuses nesting deeper than MAX_JSON_DEPTH, naming where it stops', async (t) => {
  let deep: unknown = 'leaf'
  for (let i = 0; i < MAX_JSON_DEPTH + 5; i++) deep = [deep]
  const found = findTextProblem(deep)
  t.equal(found?.message, `is nested deeper than ${MAX_JSON_DEPTH} levels`)
  t.equal(found?.field, '/0'.repeat(MAX_JSON_DEPTH), `the pointer of the value at depth ${MAX_JSON_DEPTH}`)
  let ok: unknown = 'leaf'
  for (let i = 0; i < MAX_JSON_DEPTH; i++) ok = { k: ok }
  t.equal(findTextProblem(ok), undefined, `${MAX_JSON_DEPTH} levels are allowed`)
})
