// compose.yaml: valid with the example env plus generated secrets, and the deployment's invariants hold on the
// resolved file. With docker-compose on PATH (CI: .ci/install-deploy-tools) Compose itself resolves the file and
// our own resolution must agree with it; without, the file is parsed and interpolated here.
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { ConfigSchema } from '../../schemas/config.js'
import { loadConfig } from '../../plugins/external/config.js'
import {
  type ComposeFile, type ComposeService, dependencies, durationMs, environment, generatedEnvFile, hasBinary,
  parseEnvFile, portMappings, readRawCompose, repoFile, resolveByParsing, resolveWithDockerCompose
} from './compose-config.js'

const SERVICE = 'lago-api-integration'
const PROXY = 'lago-api-integration-proxy'
const ONE_SHOTS = ['postgres-init', 'lago-migrate']
const LAGO_BACKEND = ['lago-migrate', 'lago-api', 'lago-worker', 'lago-clock']
/** The secrets compose.yaml must refuse to run without (`${VAR:?…}`); generate-keys.sh writes each of them. */
const REQUIRED_SECRETS = [
  'POSTGRES_PASSWORD', 'INTEGRATION_DB_PASSWORD', 'SECRET_KEY_BASE', 'ENCRYPTION_PRIMARY_KEY',
  'ENCRYPTION_DETERMINISTIC_KEY', 'ENCRYPTION_KEY_DERIVATION_SALT', 'LAGO_RSA_PRIVATE_KEY', 'LAGO_ORG_API_KEY',
  'LAGO_ORG_USER_PASSWORD'
]
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|_KEY$|_KEYS$|KEY_BASE|_SALT$|PRIVATE_KEY|DATABASE_URL/

const useDockerCompose = await hasBinary('docker-compose')
const MODE = useDockerCompose
  ? 'docker-compose config (Compose resolves the file; our own resolution is checked against it)'
  : 'YAML parse + interpolation in the test (docker-compose is not on PATH; .ci/install-deploy-tools installs it)'

type Context = { teardown: (fn: () => unknown) => void }

async function resolved (t: Context): Promise<{ config: ComposeFile, env: Record<string, string> }> {
  const { file, env } = await generatedEnvFile(t)
  const config = useDockerCompose ? await resolveWithDockerCompose(file) : await resolveByParsing(env)
  return { config, env }
}

const services = (c: ComposeFile): Record<string, ComposeService> => c.services
const isOneShot = (s: ComposeService): boolean => s.restart === 'no'

t.test(`compose.yaml resolves with .env.example + scripts/generate-keys.sh [mode: ${MODE}]`, async (t) => {
  t.comment(`mode: ${MODE}`)
  const { file, env } = await generatedEnvFile(t)
  const ours = await resolveByParsing(env)
  t.same(Object.keys(ours.services).sort(), [
    'lago-api', SERVICE, PROXY, 'lago-clock', 'lago-front', 'lago-migrate', 'lago-pdf', 'lago-worker',
    'postgres', 'postgres-init', 'redis'
  ], 'the stack: Lago API, worker, clock, front end, PDF renderer and migration; PostgreSQL, Redis; the service and its proxy')
  if (useDockerCompose) {
    const theirs = await resolveWithDockerCompose(file)
    t.same(Object.keys(theirs.services).sort(), Object.keys(ours.services).sort(), 'Compose sees the same services')
    for (const [name, service] of Object.entries(theirs.services)) {
      t.same(environment(service), environment(ours.services[name]), `${name}: Compose resolves the same environment as this test`)
    }
  }
})

t.test('without the secrets, compose.yaml refuses to resolve and names the missing variable', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'lai-deploy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const bare = path.join(dir, '.env')
  await copyFile(repoFile('.env.example'), bare)
  if (useDockerCompose) {
    await t.rejects(resolveWithDockerCompose(bare), /run scripts\/generate-keys\.sh \([A-Z_]+\)/, 'docker-compose config fails')
  }
  const env = parseEnvFile(await readFile(bare, 'utf8'))
  await t.rejects(resolveByParsing(env), /^[A-Z_]+: run scripts\/generate-keys\.sh \([A-Z_]+\)$/, 'our own resolution fails the same way')
  const complete = (await generatedEnvFile(t)).env
  for (const secret of REQUIRED_SECRETS) {
    await t.rejects(resolveByParsing({ ...complete, [secret]: '' }), new RegExp(`^${secret}: `), `${secret} is required`)
  }
})

t.test('ports: the seed README\'s host ports; PostgreSQL and Redis on the loopback only', async (t) => {
  const { config } = await resolved(t)
  const published = Object.fromEntries(Object.entries(services(config))
    .map(([name, s]) => [name, portMappings(s).map((p) => `${p.hostIp === '' ? '*' : p.hostIp}:${p.published}->${p.target}`)])
    .filter(([, p]) => p.length > 0))
  t.same(published, {
    postgres: ['127.0.0.1:5433->5432'],
    redis: ['127.0.0.1:6380->6379'],
    'lago-api': ['*:3000->3000'],
    'lago-front': ['*:8080->80'],
    [PROXY]: ['*:3002->3002']
  })
})

t.test('scaling: the service has no fixed name or port; the proxy follows every replica', async (t) => {
  const { config } = await resolved(t)
  for (const [name, s] of Object.entries(services(config))) t.equal(s.container_name, undefined, `${name} has no container_name`)
  t.same(portMappings(services(config)[SERVICE]), [], `${SERVICE} publishes no port (the proxy does)`)

  const proxy = services(config)[PROXY]
  t.ok(proxy.volumes?.some((v) => typeof v === 'string' && /Caddyfile:\/etc\/caddy\/Caddyfile:ro/.test(v)), 'the proxy reads the repository\'s Caddyfile')
  const caddyfile = await readFile(repoFile('Caddyfile'), 'utf8')
  const port = loadConfig(environment(services(config)[SERVICE])).PORT
  t.match(caddyfile, new RegExp(`^\\s*dynamic a ${SERVICE} ${port} \\{`, 'm'),
    'Caddy re-resolves the service name (every replica\'s address) on the service\'s port')
  t.match(caddyfile, /^\s*:3002 \{/m, 'and listens on 3002')
  t.match(caddyfile, /lb_try_duration/, 'a request to a replica that is going away is retried on another')
})

t.test('images: pinned versions; Lago\'s images share one release; the service is built from the Containerfile', async (t) => {
  const { config } = await resolved(t)
  for (const [name, s] of Object.entries(services(config))) {
    if (s.build !== undefined) continue
    const tag = /^[a-z0-9][a-z0-9./_-]*:([A-Za-z0-9._-]+)$/.exec(s.image ?? '')?.[1]
    t.ok(tag !== undefined && tag !== 'latest' && /\d+\.\d+/.test(tag), `${name}: ${s.image ?? '(no image)'} is pinned to a version`)
  }
  const tags = ['lago-migrate', 'lago-api', 'lago-worker', 'lago-clock', 'lago-front'].map((n) => services(config)[n].image?.split(':')[1])
  t.equal(new Set(tags).size, 1, 'getlago/api and getlago/front at the same release')
  t.match(tags[0], /^v\d+\.\d+\.\d+$/, 'a released Lago version')
  for (const n of LAGO_BACKEND) t.match(services(config)[n].image, /^getlago\/api:/, `${n} runs Lago's official API image`)
  t.match(services(config)['lago-front'].image, /^getlago\/front:/)

  const build = services(config)[SERVICE].build
  t.equal(typeof build === 'object' ? build.dockerfile : undefined, 'Containerfile', `${SERVICE} is built from the Containerfile`)
  t.ok(existsSync(repoFile('Containerfile')))
  t.equal(Object.entries(services(config)).filter(([, s]) => s.build !== undefined).length, 1, 'only the service is built here')
})

t.test('health checks, restart policies and start order', async (t) => {
  const { config } = await resolved(t)
  const all = services(config)
  t.same(Object.keys(all).filter((n) => isOneShot(all[n])).sort(), [...ONE_SHOTS].sort(), 'the one-shot steps run once (restart: "no")')
  for (const [name, s] of Object.entries(all)) {
    if (isOneShot(s)) continue
    t.equal(s.restart, 'unless-stopped', `${name} restarts unless stopped`)
    const test = s.healthcheck?.test
    t.ok(s.healthcheck?.disable !== true && test !== undefined && test.length > 0 && test[0] !== 'NONE', `${name} has a health check`)
  }
  for (const [name, s] of Object.entries(all)) {
    for (const [target, dep] of Object.entries(dependencies(s))) {
      t.ok(target in all, `${name} depends on an existing service (${target})`)
      const expected = isOneShot(all[target]) ? 'service_completed_successfully' : 'service_healthy'
      t.equal(dep.condition, expected, `${name} waits for ${target}: ${expected}`)
    }
  }
  const needs = (name: string, target: string): void => { t.ok(target in dependencies(all[name]), `${name} starts after ${target}`) }
  for (const n of ['lago-api', 'lago-worker', 'lago-clock']) needs(n, 'lago-migrate')
  needs('lago-migrate', 'postgres')
  needs('postgres-init', 'postgres')
  needs(SERVICE, 'postgres-init')
  needs(SERVICE, 'redis')
  needs(SERVICE, 'lago-api')
  needs(PROXY, SERVICE)
  needs('lago-front', 'lago-api')
})

t.test('volumes are named; the only bind mounts are read-only files of this repository', async (t) => {
  const { config } = await resolved(t)
  const declared = Object.keys(config.volumes ?? {})
  t.same(declared.sort(), ['lago_storage', 'postgres_data', 'redis_data'])
  for (const [name, s] of Object.entries(services(config))) {
    for (const v of s.volumes ?? []) {
      t.equal(typeof v, 'string', `${name}: short volume syntax`)
      const [source, , mode = ''] = String(v).split(':')
      if (declared.includes(source)) continue
      const file = path.resolve(repoFile('.'), source)
      t.ok(file.startsWith(repoFile('.')) && existsSync(file), `${name}: bind mount ${source} is a file of the repository`)
      t.ok(mode.split(',').includes('ro'), `${name}: bind mount ${source} is read-only`)
    }
  }
  t.match(services(config).postgres.volumes, [/^postgres_data:/])
  t.match(services(config).redis.volumes, [/^redis_data:/])
})

t.test('resource limits on the stateless services; the service drains before it is killed', async (t) => {
  const { config } = await resolved(t)
  for (const [name, s] of Object.entries(services(config))) {
    if (isOneShot(s) || name === 'postgres' || name === 'redis') continue
    t.ok(s.deploy?.resources?.limits?.memory, `${name} has a memory limit`)
  }
  const service = services(config)[SERVICE]
  t.ok(service.deploy?.resources?.limits?.cpus, `${SERVICE} has a CPU limit`)
  const { SHUTDOWN_GRACE_MS } = loadConfig(environment(service))
  t.ok(durationMs(service.stop_grace_period ?? '10s') > SHUTDOWN_GRACE_MS,
    `stop_grace_period (${service.stop_grace_period ?? 'default 10s'}) exceeds SHUTDOWN_GRACE_MS (${SHUTDOWN_GRACE_MS} ms)`)
})

t.test('no secret is written in compose.yaml: each comes from the env file, the required ones with a :? default', async (t) => {
  const raw = await readRawCompose()
  const text = await readFile(repoFile('compose.yaml'), 'utf8')
  for (const [name, s] of Object.entries(raw.services)) {
    for (const [key, value] of Object.entries(environment(s))) {
      if (!SECRET_NAME.test(key)) continue
      t.match(value, /\$\{[A-Z_]+(:?[-?][^}]*)?\}/, `${name}.${key} takes its value from the env file`)
    }
  }
  for (const secret of REQUIRED_SECRETS) {
    const uses = [...text.matchAll(new RegExp(`\\$\\{${secret}(:?[-?])?`, 'g'))]
    t.ok(uses.length > 0 && uses.every((m) => m[1] === ':?'), `${secret} is always required (\${${secret}:?…})`)
  }

  const { config, env } = await resolved(t)
  const all = services(config)
  const service = environment(all[SERVICE])
  t.equal(service.LAGO_API_KEY, env.LAGO_ORG_API_KEY, 'the service forwards with the key Lago\'s first organization is created with')
  t.equal(environment(all['lago-migrate']).LAGO_ORG_API_KEY, env.LAGO_ORG_API_KEY)
  t.equal(environment(all['lago-migrate']).LAGO_CREATE_ORG, 'true', 'lago-migrate creates the organization on first start')
  for (const key of ['LAGO_ORG_NAME', 'LAGO_ORG_USER_EMAIL', 'LAGO_ORG_USER_PASSWORD']) {
    t.ok(environment(all['lago-migrate'])[key], `lago-migrate has ${key}`)
  }
  t.equal(new URL(service.DATABASE_URL).password, env.INTEGRATION_DB_PASSWORD, 'the service\'s database password is INTEGRATION_DB_PASSWORD')
  t.equal(environment(all['postgres-init']).SERVICE_DB_PASSWORD, env.INTEGRATION_DB_PASSWORD, 'the role postgres-init creates has the same password')
  t.equal(environment(all.postgres).POSTGRES_PASSWORD, env.POSTGRES_PASSWORD)
  t.equal(service.WEBHOOK_SECRET, env.LAGO_WEBHOOK_SECRET, 'LAGO_WEBHOOK_SECRET is the service\'s WEBHOOK_SECRET')

  const shared = ['DATABASE_URL', 'REDIS_URL', 'SECRET_KEY_BASE', 'LAGO_RSA_PRIVATE_KEY', 'LAGO_ENCRYPTION_PRIMARY_KEY',
    'LAGO_ENCRYPTION_DETERMINISTIC_KEY', 'LAGO_ENCRYPTION_KEY_DERIVATION_SALT', 'LAGO_API_URL', 'LAGO_FRONT_URL']
  for (const n of LAGO_BACKEND) {
    for (const key of shared) t.equal(environment(all[n])[key], environment(all['lago-api'])[key], `${n} and lago-api share ${key}`)
  }
  t.equal(environment(all['lago-api']).LAGO_ENCRYPTION_PRIMARY_KEY, env.ENCRYPTION_PRIMARY_KEY, 'Lago gets the seed\'s ENCRYPTION_* keys')
  t.equal(environment(all['lago-api']).SECRET_KEY_BASE, env.SECRET_KEY_BASE)
  t.notOk('LAGO_ORG_USER_PASSWORD' in environment(all['lago-api']), 'the admin password stays with the one-shot migration')
})

t.test('the service\'s environment is its configuration: ConfigSchema keys only, all of them, and it parses', async (t) => {
  const { config } = await resolved(t)
  const all = services(config)
  const env = environment(all[SERVICE])
  const schemaKeys = Object.keys(ConfigSchema.properties)
  for (const key of Object.keys(env)) t.ok(schemaKeys.includes(key), `${key} is a variable of schemas/config.ts`)
  for (const key of schemaKeys) {
    t.ok(key in env, `${key} reaches the container (add \`${key}: \${${key}:-}\` to ${SERVICE}'s environment in compose.yaml)`)
  }

  const parsed = loadConfig(env)
  t.equal(parsed.NODE_ENV, 'production')
  t.equal(parsed.HOST, '0.0.0.0', 'listens on every interface of the container')
  t.equal(parsed.TRUST_PROXY, true, 'behind the proxy')
  t.ok(parsed.WEBHOOK_SECRET !== undefined || parsed.WEBHOOK_TOKENS.length > 0, 'ingestion is authenticated')
  t.ok(parsed.API_KEYS.includes(environment(all['lago-migrate']).LAGO_ORG_API_KEY), '/api accepts the Lago key')

  t.ok(parsed.DATABASE_URL !== undefined, 'the stack sets DATABASE_URL explicitly (unset would mean an embedded PostgreSQL)')
  const own = new URL(parsed.DATABASE_URL ?? 'postgres://unset')
  const lago = new URL(environment(all['lago-api']).DATABASE_URL)
  t.equal(own.host, 'postgres:5432', 'the service uses the stack\'s PostgreSQL server')
  t.equal(lago.host, own.host, 'the same server as Lago')
  t.not(own.pathname, lago.pathname, 'but not Lago\'s database')
  t.not(own.username, lago.username, 'nor Lago\'s role')
  t.equal(own.pathname, `/${environment(all['postgres-init']).SERVICE_DB_NAME}`, 'the database postgres-init creates')
  t.equal(own.username, environment(all['postgres-init']).SERVICE_DB_USER, 'owned by the role postgres-init creates')
  t.equal(new URL(parsed.REDIS_URL ?? 'unset:').host, 'redis:6379', 'REDIS_URL set explicitly (unset means in-process): replicas share limits and cache')
  const lagoUrl = new URL(parsed.LAGO_API_URL)
  t.equal(lagoUrl.hostname, 'lago-api', 'Lago\'s API by its service name')
  t.ok(portMappings(all['lago-api']).some((p) => p.target === lagoUrl.port), 'on the port lago-api listens on')
  const healthcheck = all[SERVICE].healthcheck?.test
  t.same(healthcheck, ['CMD', 'node', 'dist/scripts/healthcheck.js', '/health/ready'], 'ready = PostgreSQL reachable (Redis is optional)')
})

t.test('jwt webhooks: the service accepts Lago\'s own LAGO_API_URL as issuer, and LAGO_WEBHOOK_ISSUER from .env too', async (t) => {
  const { file, env } = await generatedEnvFile(t)
  const issuers = async (): Promise<{ accepted: string[], lago: string }> => {
    const config = useDockerCompose ? await resolveWithDockerCompose(file) : await resolveByParsing(parseEnvFile(await readFile(file, 'utf8')))
    return { accepted: loadConfig(environment(services(config)[SERVICE])).LAGO_WEBHOOK_ISSUER, lago: environment(services(config)['lago-api']).LAGO_API_URL }
  }
  t.equal(env.LAGO_WEBHOOK_ISSUER, '', '.env.example leaves it empty')
  const plain = await issuers()
  t.same(plain.accepted, [plain.lago], 'unset: the URL Lago signs with (its LAGO_API_URL)')

  const text = await readFile(file, 'utf8')
  t.match(text, /^LAGO_WEBHOOK_ISSUER=$/m)
  await writeFile(file, text.replace(/^LAGO_WEBHOOK_ISSUER=$/m, 'LAGO_WEBHOOK_ISSUER=https://lago.example.com,https://old-lago.example.com'))
  const set = await issuers()
  t.same(set.accepted, [set.lago, 'https://lago.example.com', 'https://old-lago.example.com'], 'set in .env: honoured, with Lago\'s own URL kept')
})
