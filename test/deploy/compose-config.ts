// Helpers for the deployment tests: read env files and resolve compose.yaml the way Compose does, either with the
// real `docker-compose config` (when the binary is on PATH) or by parsing the YAML and interpolating ourselves.
import { execFile } from 'node:child_process'
import { realpathSync } from 'node:fs'
import { mkdtemp, readFile, copyFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { parse } from 'yaml'

const run = promisify(execFile)

// The repository itself, also when the tests run transpiled from .tap/build (npm test), where package.json and
// every other non-TypeScript file is a link into the repository: the deployment is made of the sources.
export const ROOT = path.dirname(realpathSync(path.resolve(import.meta.dirname, '..', '..', 'package.json')))
export const repoFile = (name: string): string => path.join(ROOT, name)

export interface HealthCheck { test?: string[] | string, disable?: boolean }
export interface PortMapping { hostIp: string, published: string, target: string }
export interface ComposeService {
  image?: string
  build?: { context?: string, dockerfile?: string } | string
  container_name?: string
  command?: string[] | string
  entrypoint?: string[] | string
  environment?: Record<string, string | number | boolean | null>
  ports?: Array<string | { host_ip?: string, published?: string | number, target?: string | number }>
  volumes?: Array<string | { type?: string, source?: string, target?: string, read_only?: boolean }>
  depends_on?: Record<string, { condition?: string }> | string[]
  healthcheck?: HealthCheck
  restart?: string
  stop_grace_period?: string
  deploy?: { resources?: { limits?: { memory?: string, cpus?: string | number } } }
}
export interface ComposeFile {
  services: Record<string, ComposeService>
  volumes?: Record<string, unknown>
}

/** Parses an env file as Compose does: `KEY=value`, optional quotes, ` #` starts an inline comment. */
export function parseEnvFile (text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
    if (m === null) continue
    let value = m[2]
    const quote = value[0]
    if (quote === '"' || quote === "'") {
      const end = value.indexOf(quote, 1)
      value = end === -1 ? value.slice(1) : value.slice(1, end)
    } else {
      value = value.replace(/(^|\s+)#.*$/, '').trimEnd()
    }
    env[m[1]] = value
  }
  return env
}

export class InterpolationError extends Error {}

/**
 * Compose's interpolation: `$$` is a literal `$`; `${VAR}`, `$VAR`; `${VAR:-default}` / `${VAR-default}`;
 * `${VAR:?message}` / `${VAR?message}` fail with the message when VAR is empty / unset. No nesting (compose.yaml
 * uses none: docker-compose 1.29 does not support it).
 */
export function interpolate (value: string, env: Record<string, string>): string {
  return value.replace(/\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (_all, dollar: string, name?: string, op?: string, arg?: string, bare?: string) => {
      if (dollar === '$') return '$'
      if (bare !== undefined) return env[bare] ?? ''
      const v = env[name as string]
      const missing = op?.startsWith(':') === true ? v === undefined || v === '' : v === undefined
      if (op === undefined) return v ?? ''
      if (op.endsWith('-')) return missing ? arg ?? '' : v as string
      if (missing) throw new InterpolationError(`${name as string}: ${arg ?? 'required'}`)
      return v as string
    })
}

function interpolateTree (node: unknown, env: Record<string, string>): unknown {
  if (typeof node === 'string') return interpolate(node, env)
  if (Array.isArray(node)) return node.map((item) => interpolateTree(item, env))
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env)]))
  }
  return node
}

/** compose.yaml as written: anchors and merge keys resolved, `${…}` left as is. */
export async function readRawCompose (): Promise<ComposeFile> {
  return parse(await readFile(repoFile('compose.yaml'), 'utf8'), { merge: true }) as ComposeFile
}

/** compose.yaml resolved by our own interpolation (extension fields `x-…` dropped, as Compose does). */
export async function resolveByParsing (env: Record<string, string>): Promise<ComposeFile> {
  const raw = await readRawCompose() as unknown as Record<string, unknown>
  const kept = Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('x-')))
  return interpolateTree(kept, env) as ComposeFile
}

/** Whether a tool is on PATH. DEPLOY_TESTS_WITHOUT=docker-compose,shellcheck exercises the fallbacks. */
export async function hasBinary (name: string): Promise<boolean> {
  if ((process.env.DEPLOY_TESTS_WITHOUT ?? '').split(',').includes(name)) return false
  try {
    await run('sh', ['-c', `command -v ${name}`])
    return true
  } catch {
    return false
  }
}

/** Compose reads the shell's environment before the env file: give it nothing but PATH and HOME. */
const cleanEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME })

/** `docker-compose --env-file <file> config` on compose.yaml, parsed. Rejects with Compose's message on error. */
export async function resolveWithDockerCompose (envFile: string): Promise<ComposeFile> {
  try {
    const { stdout } = await run('docker-compose', ['--env-file', envFile, '-f', repoFile('compose.yaml'), 'config'],
      { cwd: ROOT, env: cleanEnv(), maxBuffer: 16 * 1024 * 1024 })
    return parse(stdout) as ComposeFile
  } catch (err) {
    const e = err as { stderr?: string, message: string }
    throw new Error(`docker-compose config failed: ${e.stderr ?? e.message}`)
  }
}

/**
 * A complete env file as a user gets it: .env.example copied, then scripts/generate-keys.sh. Removed with the test.
 */
export async function generatedEnvFile (t: { teardown: (fn: () => unknown) => void }): Promise<{ file: string, env: Record<string, string>, stdout: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lai-deploy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, '.env')
  await copyFile(repoFile('.env.example'), file)
  const { stdout } = await run('bash', [repoFile('scripts/generate-keys.sh'), file], { env: cleanEnv() })
  return { file, env: parseEnvFile(await readFile(file, 'utf8')), stdout }
}

export function portMappings (service: ComposeService): PortMapping[] {
  return (service.ports ?? []).map((p) => {
    if (typeof p !== 'string') return { hostIp: p.host_ip ?? '', published: String(p.published ?? ''), target: String(p.target ?? '') }
    const parts = p.replace(/\/tcp$/, '').split(':')
    const target = parts.pop() ?? ''
    const published = parts.pop() ?? ''
    return { hostIp: parts.join(':'), published, target }
  })
}

export function dependencies (service: ComposeService): Record<string, { condition?: string }> {
  const d = service.depends_on ?? {}
  return Array.isArray(d) ? Object.fromEntries(d.map((name) => [name, {}])) : d
}

export function environment (service: ComposeService): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, v === null ? '' : String(v)]))
}

/** "30s", "1m30s", "500ms" → milliseconds. */
export function durationMs (value: string): number {
  let total = 0
  for (const [, n, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h']
  }
  return total
}
