// The autocannon load generator of npm run bench, run as a process of its own (pinned to one CPU by the caller):
// autocannon's CLI cannot give each request its own body (its id replacement leaves a wrong content-length), so
// this drives autocannon's API with setupRequest. Reads its options from the JSON file named by argv[2], prints the result
// as JSON.
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'

const opts = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { url: string, path: string, body: string, connections: number, seconds: number, rate?: number, idPrefix: string }
let n = 0
const result = await autocannon({
  url: opts.url,
  connections: opts.connections,
  duration: opts.seconds,
  ...(opts.rate !== undefined ? { overallRate: opts.rate } : {}),
  requests: [{
    method: 'POST',
    path: opts.path,
    headers: { 'content-type': 'application/json' },
    setupRequest: (request) => ({ ...request, body: opts.body.replaceAll('@@id@@', `${opts.idPrefix}-${n++}`) })
  }]
})
process.stdout.write(`${JSON.stringify(result)}\n`)
