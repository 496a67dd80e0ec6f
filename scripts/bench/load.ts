// Load generators for npm run bench, each in a process of its own so that the process under test keeps what the
// two CPUs can give it: wrk (Debian's `wrk`) when it is installed, else autocannon pinned to one CPU with taskset;
// at a fixed rate, paced-worker.ts (requests spread evenly, latency from when each was due), pinned the same way. A body template's @@id@@ is replaced per request by an id unique to the run, so every event is new.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

export interface LoadResult {
  loader: string
  requests: number
  seconds: number
  reqPerSec: number
  /** Responses with a 2xx status. */
  ok: number
  errors: number
  p50: number
  p99: number
}

export interface LoadOptions {
  url: string
  path: string
  /** JSON text; each @@id@@ becomes the request's unique id. */
  body: string
  connections: number
  seconds: number
  /** Requests per second for the whole run, spread evenly (paced-worker.ts); undefined: as fast as it goes. */
  rate?: number
  /** Prefix of the unique ids (the run and scenario). */
  idPrefix: string
}

const PLACEHOLDER = '@@id@@'

const which = (command: string): boolean =>
  (process.env.PATH ?? '').split(path.delimiter).some((d) => d !== '' && existsSync(path.join(d, command)))

export const wrkAvailable = (): boolean => process.env.BENCH_LOADER !== 'autocannon' && which('wrk')
const tasksetAvailable = (): boolean => which('taskset')

export function loaderName (rate?: number): string {
  if (rate === undefined && wrkAvailable()) return 'wrk'
  const name = rate === undefined ? 'autocannon' : 'paced open loop'
  return tasksetAvailable() ? `${name} (own process, taskset CPU 1)` : `${name} (own process)`
}

/** Runs one of the Node load generators here (its options through a file: a batch body is too long for argv). */
async function runWorker (file: string, opts: LoadOptions): Promise<string> {
  const optionsFile = path.join(mkdtempSync(path.join(tmpdir(), 'lai-bench-')), 'options.json')
  writeFileSync(optionsFile, JSON.stringify(opts))
  const args = [path.join(import.meta.dirname, file), optionsFile]
  const out = tasksetAvailable() ? await run('taskset', ['-c', '1', process.execPath, ...args]) : await run(process.execPath, args)
  return out.trim().split('\n').at(-1) ?? '{}'
}

async function run (command: string, args: string[]): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`${command} exited with ${code}: ${err.slice(0, 500)}`)
  return out
}

const WRK_SCRIPT = `
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  local f = io.open(args[1], "rb")
  template = f:read("*a")
  f:close()
  prefix = args[2] .. "-" .. tid .. "-"
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  -- The template cut at each placeholder once: a request joins the pieces around its id, where a gsub over the
  -- whole body (1.3 MB for generic_api) took a third of a CPU from the service under test.
  parts = {}
  slots = {}
  local from = 1
  while true do
    local s, e = template:find("${PLACEHOLDER}", from, true)
    if s == nil then break end
    parts[#parts + 1] = template:sub(from, s - 1)
    parts[#parts + 1] = ""
    slots[#slots + 1] = #parts
    from = e + 1
  end
  parts[#parts + 1] = template:sub(from)
end
function request()
  counter = counter + 1
  local id = prefix .. counter
  for i = 1, #slots do parts[slots[i]] = id end
  return wrk.format(nil, nil, nil, table.concat(parts))
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
`

async function withWrk (opts: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lai-bench-'))
  const script = path.join(dir, 'body.lua')
  const bodyFile = path.join(dir, 'body.json')
  writeFileSync(script, WRK_SCRIPT)
  writeFileSync(bodyFile, opts.body)
  const out = await run('wrk', ['-t2', `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '10s', '-s', script,
    `${opts.url}${opts.path}`, '--', bodyFile, opts.idPrefix])
  const line = out.split('\n').find((l) => l.startsWith('BENCH '))
  if (line === undefined) throw new Error(`wrk printed no summary:\n${out}`)
  const s = JSON.parse(line.slice(6)) as { requests: number, duration_us: number, errors: number, status_errors: number, p50_us: number, p99_us: number }
  const seconds = s.duration_us / 1e6
  const errors = s.errors + s.status_errors
  return {
    loader: 'wrk',
    requests: s.requests,
    seconds,
    reqPerSec: s.requests / seconds,
    ok: s.requests - s.status_errors,
    errors,
    p50: s.p50_us / 1000,
    p99: s.p99_us / 1000
  }
}

async function withAutocannon (opts: LoadOptions): Promise<LoadResult> {
  const r = JSON.parse(await runWorker('autocannon-worker.js', opts)) as {
    requests: { total: number, average: number },
    duration: number,
    '2xx': number,
    non2xx: number,
    errors: number,
    timeouts: number,
    latency: { p50: number, p99: number }
  }
  return {
    loader: loaderName(opts.rate),
    requests: r.requests.total,
    seconds: r.duration,
    reqPerSec: r.requests.total / r.duration,
    ok: r['2xx'],
    errors: r.non2xx + r.errors + r.timeouts,
    p50: r.latency.p50,
    p99: r.latency.p99
  }
}

async function paced (opts: LoadOptions & { rate: number }): Promise<LoadResult> {
  const r = JSON.parse(await runWorker('paced-worker.js', opts)) as { requests: number, seconds: number, ok: number, errors: number, p50: number, p99: number, sendLagP99: number, connectionsUsed: number, connectionCap: number, waitingForConnection: number }
  // How late the loader itself sent (part of every latency it reports), so that a figure can be told apart from it,
  // how many connections were open at most, and how many due requests waited for one at most (the lag leaves that out).
  const loader = `${loaderName(opts.rate)}, its own sending lag p99 ${r.sendLagP99.toFixed(1)} ms, at most ${r.connectionsUsed} of ${r.connectionCap} connections open and ${r.waitingForConnection} requests waiting for one`
  return { loader, requests: r.requests, seconds: r.seconds, reqPerSec: r.requests / r.seconds, ok: r.ok, errors: r.errors, p50: r.p50, p99: r.p99 }
}

/** Drives one endpoint: at a fixed rate paced-worker.ts, else the best loader available. */
export async function load (opts: LoadOptions): Promise<LoadResult> {
  if (opts.rate !== undefined) return await paced({ ...opts, rate: opts.rate })
  return wrkAvailable() ? await withWrk(opts) : await withAutocannon(opts)
}
