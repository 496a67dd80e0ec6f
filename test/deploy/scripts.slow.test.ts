// The deployment's shell scripts: shellcheck (or at least `bash -n` / `sh -n` without it), generate-keys.sh's
// guarantees, and create-service-database.sh against the real local PostgreSQL. generate-keys.sh needs openssl and
// create-service-database.sh needs psql: on a machine with only Node those tests are skipped, saying why, unless
// CI=true, where a missing tool is a failure (CI installs them).
import { execFile } from 'node:child_process'
import { createPrivateKey, randomBytes } from 'node:crypto'
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import t from 'tap'
import { loadConfig } from '../../plugins/external/config.js'
import { ensureDatabase, migrateToLatest } from '../../db/migrator.js'
import { POSTGRES_URL } from '../helpers/app.js'
import { hasBinary, parseEnvFile, repoFile } from './compose-config.js'

const run = promisify(execFile)
const SCRIPTS = [
  ...(await readdir(repoFile('scripts'))).filter((f) => f.endsWith('.sh')).map((f) => `scripts/${f}`),
  '.ci/install-deploy-tools'
]

t.test('shell scripts pass shellcheck', async (t) => {
  t.ok(SCRIPTS.length >= 4, `checking ${SCRIPTS.join(', ')}`)
  if (await hasBinary('shellcheck')) {
    t.comment('mode: shellcheck')
    const result = await run('shellcheck', ['--external-sources', ...SCRIPTS], { cwd: repoFile('.') })
      .then(() => '', (err: { stdout?: string }) => err.stdout ?? 'shellcheck failed')
    t.equal(result, '', 'shellcheck reports nothing')
  } else {
    t.comment('mode: syntax only (shellcheck is not on PATH; .ci/install-deploy-tools installs it)')
  }
  for (const script of SCRIPTS) {
    const shell = (await readFile(repoFile(script), 'utf8')).startsWith('#!/bin/sh') ? 'sh' : 'bash'
    await t.resolves(run(shell, ['-n', script], { cwd: repoFile('.') }), `${shell} -n ${script}`)
    t.ok(((await stat(repoFile(script))).mode & 0o111) !== 0, `${script} is executable`)
  }
})

async function tempEnv (t: { teardown: (fn: () => unknown) => void }, content?: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lai-keys-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, '.env')
  if (content === undefined) await copyFile(repoFile('.env.example'), file)
  else await writeFile(file, content)
  return file
}

/**
 * The tap options of a test that needs `tool` on PATH: none when it is there; a skip naming the tool when it is
 * not; under CI=true no skip, and `missing` makes the test fail at once with the same reason.
 */
async function needs (tool: string, forWhat: string): Promise<{ skip?: string, missing?: string }> {
  if (await hasBinary(tool)) return {}
  const reason = `${tool} is not on PATH (${forWhat})`
  return process.env.CI === 'true' ? { missing: `${reason} and CI=true: CI must run this test` } : { skip: reason }
}

const openssl = await needs('openssl', 'generate-keys.sh draws every secret with it')
const psql = await needs('psql', 'create-service-database.sh runs it; install postgresql-client')

const generateKeys = async (file: string): Promise<string> =>
  (await run('bash', [repoFile('scripts/generate-keys.sh'), file], { env: { PATH: process.env.PATH } })).stdout

t.test('generate-keys.sh fills every empty secret with a usable value and prints no secret', { skip: openssl.skip }, async (t) => {
  if (openssl.missing !== undefined) return t.fail(openssl.missing)
  const file = await tempEnv(t)
  const stdout = await generateKeys(file)
  const env = parseEnvFile(await readFile(file, 'utf8'))
  t.match(env.POSTGRES_PASSWORD, /^[0-9a-f]{48}$/, 'POSTGRES_PASSWORD: hex, safe inside a connection URL')
  t.match(env.INTEGRATION_DB_PASSWORD, /^[0-9a-f]{48}$/)
  t.not(env.POSTGRES_PASSWORD, env.INTEGRATION_DB_PASSWORD, 'each secret is drawn on its own')
  t.match(env.SECRET_KEY_BASE, /^[0-9a-f]{128}$/, 'SECRET_KEY_BASE: openssl rand -hex 64, as the seed README')
  for (const key of ['ENCRYPTION_PRIMARY_KEY', 'ENCRYPTION_DETERMINISTIC_KEY', 'ENCRYPTION_KEY_DERIVATION_SALT']) {
    t.match(env[key], /^[0-9a-f]{64}$/, `${key}: openssl rand -hex 32, as the seed README`)
  }
  const pem = Buffer.from(env.LAGO_RSA_PRIVATE_KEY, 'base64').toString('utf8')
  const key = createPrivateKey(pem)
  t.equal(key.asymmetricKeyType, 'rsa', 'LAGO_RSA_PRIVATE_KEY is the base64 of an RSA private key PEM')
  t.equal(key.asymmetricKeyDetails?.modulusLength, 2048)
  t.match(env.LAGO_ORG_API_KEY, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'LAGO_ORG_API_KEY: a UUID v4, like the keys Lago generates')
  t.match(env.LAGO_ORG_USER_PASSWORD, /^[0-9a-f]{32}$/)
  t.match(env.WEBHOOK_TOKENS, /^[0-9a-f]{64}$/)
  const config = loadConfig({ WEBHOOK_SECRET: env.LAGO_WEBHOOK_SECRET, WEBHOOK_TOKENS: env.WEBHOOK_TOKENS })
  t.match(config.WEBHOOK_SECRET, /^whsec_/, 'LAGO_WEBHOOK_SECRET is a valid WEBHOOK_SECRET for the service')

  const secrets = Object.values(env).filter((v) => v.length >= 32)
  for (const value of secrets) t.notOk(stdout.includes(value), 'no secret value on stdout')
  t.match(stdout, /generated in .*: POSTGRES_PASSWORD .*LAGO_ORG_API_KEY/, 'names what it generated')
  t.equal((await stat(file)).mode & 0o777, 0o600, '.env is readable by its owner only')
})

t.test('generate-keys.sh never overwrites a value and is idempotent', { skip: openssl.skip }, async (t) => {
  if (openssl.missing !== undefined) return t.fail(openssl.missing)
  const file = await tempEnv(t)
  const original = await readFile(file, 'utf8')
  await writeFile(file, original
    .replace(/^POSTGRES_PASSWORD=$/m, 'POSTGRES_PASSWORD=mine')
    .replace(/^LAGO_ORG_NAME=.*$/m, 'LAGO_ORG_NAME=Globex # edited') + 'LAGO_ORG_API_KEY="quoted-key"\n')
  await generateKeys(file)
  const once = await readFile(file, 'utf8')
  const env = parseEnvFile(once)
  t.equal(env.POSTGRES_PASSWORD, 'mine', 'a value set by hand is kept')
  t.equal(env.LAGO_ORG_API_KEY, 'quoted-key', 'a quoted value further down is the one that counts, and is kept')
  t.equal(env.LAGO_ORG_NAME, 'Globex', 'other lines are untouched')
  t.match(once, /^# REQUIRED: PostgreSQL superuser/m, 'comments are kept')
  t.match(env.SECRET_KEY_BASE, /^[0-9a-f]{128}$/, 'empty ones are filled')

  const stdout = await generateKeys(file)
  t.equal(await readFile(file, 'utf8'), once, 'a second run changes nothing')
  t.match(stdout, /^kept \(already set\): /m)
  t.notMatch(stdout, /generated/)

  const missing = await tempEnv(t, 'LAGO_ORG_NAME=Initech\n')
  await generateKeys(missing)
  const appended = parseEnvFile(await readFile(missing, 'utf8'))
  t.equal(appended.LAGO_ORG_NAME, 'Initech')
  t.match(appended.LAGO_ORG_USER_PASSWORD, /^[0-9a-f]{32}$/, 'a secret absent from the file is appended')

  const dir = await mkdtemp(path.join(tmpdir(), 'lai-keys-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await generateKeys(path.join(dir, '.env'))
  const created = parseEnvFile(await readFile(path.join(dir, '.env'), 'utf8'))
  t.equal(created.LAGO_VERSION, parseEnvFile(original).LAGO_VERSION, 'a missing file is created from .env.example')
  t.match(created.POSTGRES_PASSWORD, /^[0-9a-f]{48}$/)
})

t.test('create-service-database.sh: its own role and database, least privilege, idempotent; migrations run as that role', { skip: psql.skip }, async (t) => {
  if (psql.missing !== undefined) return t.fail(psql.missing)
  const suffix = randomBytes(4).toString('hex')
  const role = `lai_role_${suffix}`
  const database = `lai_db_${suffix}`
  const admin = new URL(POSTGRES_URL)
  const env = {
    PATH: process.env.PATH,
    PGHOST: admin.hostname,
    PGPORT: admin.port === '' ? '5432' : admin.port,
    PGUSER: decodeURIComponent(admin.username) === '' ? 'postgres' : decodeURIComponent(admin.username),
    PGPASSWORD: decodeURIComponent(admin.password),
    PGDATABASE: 'postgres',
    SERVICE_DB_USER: role,
    SERVICE_DB_NAME: database,
    SERVICE_DB_PASSWORD: randomBytes(12).toString('hex')
  }
  const sql = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
  await sql.connect()
  t.teardown(async () => {
    await sql.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    await sql.query(`DROP ROLE IF EXISTS ${role}`)
    await sql.end()
  })

  const script = repoFile('scripts/create-service-database.sh')
  const first = await run('sh', [script], { env })
  t.match(first.stdout, new RegExp(`database "${database}" ready for role "${role}"`))
  await run('sh', [script], { env: { ...env, SERVICE_DB_PASSWORD: 'rotated-password' } })
  t.pass('a second run (new password) succeeds')

  const { rows: [r] } = await sql.query('SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolpassword IS NOT NULL AS has_password FROM pg_authid WHERE rolname = $1', [role])
  t.same(r, { rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolcanlogin: true, has_password: true }, 'a login role with a password and no other power')
  const { rows: [d] } = await sql.query(`SELECT pg_get_userbyid(datdba) AS owner,
      has_database_privilege('public', datname, 'CONNECT') AS public_connect FROM pg_database WHERE datname = $1`, [database])
  t.same(d, { owner: role, public_connect: false }, 'its database, owned by it, closed to other roles')

  await t.rejects(run('sh', [script], { env: { ...env, SERVICE_DB_PASSWORD: '' } }), /SERVICE_DB_PASSWORD is required/, 'refuses to run without a password')

  // The service as deployed: ensureDatabase finds the database (no CREATEDB needed), migrations run as the role.
  const url = new URL(`${POSTGRES_URL}/${database}`)
  url.username = role
  url.password = 'rotated-password'
  t.equal(await ensureDatabase(url.toString()), false, 'the service finds its database already there')
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 })
  // pg's pool.end() resolves once its clients are told to end, not once their sockets are closed: the teardown's
  // drop WITH (FORCE) can still terminate one, whose error would otherwise be unhandled.
  pool.on('error', () => {})
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })
  // Closed here, before the teardown drops the database (WITH FORCE would kill an idle pooled connection).
  const { results } = await migrateToLatest(db).finally(() => db.destroy())
  t.ok((results ?? []).length > 0 && (results ?? []).every((m) => m.status === 'Success'), 'the service\'s migrations run as its own role')
})
