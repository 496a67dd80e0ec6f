import t from 'tap'
import Fastify from 'fastify'
import { jsonOrNdjsonParser, quoteNonFiniteNumbers, tolerantJsonParser, type JsonBodyParser } from '../../../plugins/external/json-text.js'

const fastify = Fastify()
const strict = fastify.getDefaultJsonParser('error', 'error')
const run = async (parser: JsonBodyParser, text: string): Promise<unknown> =>
  await new Promise((resolve, reject) => { parser({} as never, text, (err, value) => { if (err !== null) reject(err); else resolve(value) }) })

t.test('Python\'s NaN and Infinity become strings outside JSON strings only', async (t) => {
  t.equal(quoteNonFiniteNumbers('{"a":1}'), null, 'nothing to do')
  t.equal(quoteNonFiniteNumbers('{"response_cost": NaN, "x": [Infinity, -Infinity]}'), '{"response_cost": "NaN", "x": ["Infinity", "-Infinity"]}')
  t.equal(quoteNonFiniteNumbers('{"NaN": "NaN Infinity", "m": "say \\"NaN\\"", "v": NaN}'), '{"NaN": "NaN Infinity", "m": "say \\"NaN\\"", "v": "NaN"}')
})

t.test('the tolerant parser reads NaN bodies and reports the real error otherwise', async (t) => {
  const tolerant = tolerantJsonParser(strict)
  t.same(await run(tolerant, '[{"response_cost": NaN, "id": "a"}]'), [{ response_cost: 'NaN', id: 'a' }])
  await t.rejects(run(tolerant, '{"a": NaN'), { code: 'FST_ERR_CTP_INVALID_JSON_BODY' })
  await t.rejects(run(tolerant, '{"__proto__": {"x": 1}}'), 'prototype poisoning is still refused')
})

t.test('NDJSON sent as application/json is read as a list of its lines', async (t) => {
  const parser = jsonOrNdjsonParser(strict)
  t.same(await run(parser, '{"id":"a"}\n{"id":"b","response_cost":NaN}\r\n\n{"id":"c"}'), [{ id: 'a' }, { id: 'b', response_cost: 'NaN' }, { id: 'c' }])
  t.same(await run(parser, '[{"id":"a"}]'), [{ id: 'a' }], 'a JSON array stays an array')
  t.same(await run(parser, '{"id":"a"}'), { id: 'a' }, 'a single object stays an object')
  await t.rejects(run(parser, '{"id":"a"}\n{"id":'), { code: 'FST_ERR_CTP_INVALID_JSON_BODY' }, 'a broken line fails the body with the JSON error')
  await t.rejects(run(parser, 'not json'), { code: 'FST_ERR_CTP_INVALID_JSON_BODY' })
})

t.test('a long NDJSON body is read in one pass: answered once, with every line', async (t) => {
  const parser = jsonOrNdjsonParser(strict)
  for (const n of [2048, 20_000]) {
    const text = Array.from({ length: n }, (_, i) => `{"id":"${i}","response_cost":${i === 7 ? 'NaN' : '0.1'}}`).join('\n')
    const answers: Array<{ err: Error | null, value: unknown }> = []
    parser({} as never, text, (err, value) => { answers.push({ err, value }) })
    t.equal(answers.length, 1, `${n} lines: done is called exactly once`)
    t.equal(answers[0].err, null)
    const values = answers[0].value as Array<{ id: string, response_cost: unknown }>
    t.equal(values.length, n)
    t.same([values[0], values[7], values[n - 1]], [{ id: '0', response_cost: 0.1 }, { id: '7', response_cost: 'NaN' }, { id: String(n - 1), response_cost: 0.1 }])
  }
  const broken = Array.from({ length: 2048 }, (_, i) => i === 2000 ? '{"id":' : `{"id":"${i}"}`).join('\n')
  const answers: Array<Error | null> = []
  parser({} as never, broken, (err) => { answers.push(err) })
  t.equal(answers.length, 1, 'a bad line late in a long body: done is called once')
  t.match(answers[0], { code: 'FST_ERR_CTP_INVALID_JSON_BODY' })
})
