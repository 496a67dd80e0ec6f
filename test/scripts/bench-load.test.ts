import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { spawnSync } from 'node:child_process'
import { load } from '../../scripts/bench/load.js'

// npm run bench's load generators must give every request its own ids, in every place the template has one:
// a repeated id would be measured as a duplicate (answered without a write), not as a new event.
// Placeholders first, last, side by side and inside JSON; text outside ASCII. (The test server does not parse it.)
const TEMPLATE = `@@id@@|${JSON.stringify({ batch: [{ id: '@@id@@-0' }, { id: '@@id@@-1', note: 'x@@id@@@@id@@y' }], text: 'é €' })}|@@id@@`

const wrkInstalled = spawnSync('wrk', ['--version']).error === undefined

for (const loader of ['wrk', 'autocannon'] as const) {
  t.test(`${loader}: every request's body is the template with one id of its own in each place`, { skip: loader === 'wrk' && !wrkInstalled ? 'wrk is not installed (Debian package wrk; .ci/run installs it)' : false }, async (t) => {
    const bodies: string[] = []
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        bodies.push(Buffer.concat(chunks).toString('utf8'))
        res.writeHead(202, { 'content-type': 'application/json' }).end('{}')
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => { server.closeAllConnections(); server.close() })
    const before = process.env.BENCH_LOADER
    process.env.BENCH_LOADER = loader
    t.teardown(() => { if (before === undefined) delete process.env.BENCH_LOADER; else process.env.BENCH_LOADER = before })

    const result = await load({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, path: '/x', body: TEMPLATE, connections: 4, seconds: 1, idPrefix: 'run-test' })

    t.equal(result.loader.split(' ')[0], loader)
    t.equal(result.errors, 0)
    t.ok(result.requests > 10, `${result.requests} requests in a second`)
    // Requests still in flight when the loader stops reach the server uncounted.
    t.ok(bodies.length >= result.requests, `${bodies.length} bodies received for ${result.requests} requests counted`)
    const ids = bodies.map((b) => b.slice(0, b.indexOf('|')))
    const wrong = bodies.filter((b, i) => b !== TEMPLATE.split('@@id@@').join(ids[i]))
    t.same(wrong, [], 'each body is the template with its id in all six places')
    t.equal(new Set(ids).size, ids.length, 'no id is used twice')
    t.ok(ids.every((id) => id.startsWith('run-test-')), 'ids carry the run prefix')
  })
}
