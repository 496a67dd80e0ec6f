import t from 'tap'
import Fastify from 'fastify'
import { jsonOrNdjsonParser, quoteNonFiniteNumbers, tolerantJsonParser, type JsonBodyParser } from '../../../../plugins/app/litellm/json-text.js'

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
