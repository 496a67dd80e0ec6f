// scripts/deploy.sh's own logic, with no container engine on this machine: a stand-in `docker` command (a small
// bash script written below) answers the CLI calls deploy.sh makes, from a scenario: which containers exist and in
// what state. `docker compose config` is passed to the real docker-compose when it is installed, so the .env the
// script generates is validated for real. What this cannot show (images pull, Lago boots) is out of reach here.
import { execFile } from 'node:child_process'
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { hasBinary, parseEnvFile, repoFile } from './compose-config.js'

const run = promisify(execFile)
const realCompose = await hasBinary('docker-compose')

// States: one line per container, service|status|health|exit code|restart policy (what deploy.sh's template asks).
const HEALTHY = [
  'postgres|running|healthy|0|unless-stopped',
  'redis|running|healthy|0|unless-stopped',
  'postgres-init|exited||0|no',
  'lago-migrate|exited||0|no',
  'lago-api|running|healthy|0|unless-stopped',
  'lago-worker|running|healthy|0|unless-stopped',
  'lago-clock|running|healthy|0|unless-stopped',
  'lago-front|running|healthy|0|unless-stopped',
  'lago-pdf|running|healthy|0|unless-stopped',
  'lago-api-integration|running|healthy|0|unless-stopped',
  'lago-api-integration|running|healthy|0|unless-stopped',
  'lago-api-integration-proxy|running|healthy|0|unless-stopped'
]

const FAKE_DOCKER = `#!/usr/bin/env bash
# Stand-in for the docker CLI: records each call, answers from $FAKE_DIR.
echo "$*" >> "$FAKE_DIR/calls"
[ "$1" = info ] && exit "$(cat "$FAKE_DIR/info_rc" 2>/dev/null || echo 0)"
if [ "$1" = compose ]; then
  shift
  case "$1" in
    version) echo "Docker Compose version v2.99.0-fake" ;;
    config)
      if [ -n "$REAL_COMPOSE" ]; then exec "$REAL_COMPOSE" config; fi ;;
    up) exit "$(cat "$FAKE_DIR/up_rc" 2>/dev/null || echo 0)" ;;
    ps) echo c1 ;;
    logs) echo "last log line of \${!#}" ;;
    exec) echo "bootstrap: metric ai_usage and plan ai_usage_plan ready" ;;
  esac
  exit 0
fi
case "$1" in
  inspect)
    if [[ "$*" == *com.docker.compose.project* && "$*" != *State* ]]; then echo fakeproject; else cat "$FAKE_DIR/states"; fi ;;
  ps) echo "c1 c2 c3" ;;
esac
`

interface Outcome { code: number, stdout: string, stderr: string, calls: string[], dir: string }

async function deploy (t: { teardown: (fn: () => unknown) => void }, options: { states?: string[], upFails?: boolean, infoFails?: boolean, args?: string[], noEngine?: boolean, again?: Outcome } = {}): Promise<Outcome> {
  const dir = options.again !== undefined ? path.dirname(options.again.dir) : await mkdtemp(path.join(tmpdir(), 'lai-deploy-sh-'))
  if (options.again === undefined) t.teardown(() => rm(dir, { recursive: true, force: true }))
  // A copy of what deploy.sh touches, so the repository's own .env is never written.
  const repo = path.join(dir, 'repo')
  await mkdir(path.join(repo, 'scripts'), { recursive: true })
  if (options.again === undefined) {
    for (const f of ['compose.yaml', '.env.example', 'Caddyfile', 'Containerfile', 'scripts/deploy.sh', 'scripts/generate-keys.sh', 'scripts/create-service-database.sh']) {
      await cp(repoFile(f), path.join(repo, f))
    }
  }
  const fake = path.join(dir, 'fake')
  const bin = path.join(dir, 'bin')
  await rm(fake, { recursive: true, force: true })
  await mkdir(fake)
  await mkdir(bin, { recursive: true })
  if (options.noEngine !== true) {
    await writeFile(path.join(bin, 'docker'), FAKE_DOCKER)
    await chmod(path.join(bin, 'docker'), 0o755)
  }
  await writeFile(path.join(fake, 'states'), (options.states ?? HEALTHY).join('\n') + '\n')
  if (options.upFails === true) await writeFile(path.join(fake, 'up_rc'), '1')
  if (options.infoFails === true) await writeFile(path.join(fake, 'info_rc'), '1')

  // /usr/bin and /bin only (plus the stand-in): no real docker or podman from this machine.
  const env = {
    PATH: `${bin}:/usr/bin:/bin`,
    HOME: dir,
    FAKE_DIR: fake,
    REAL_COMPOSE: realCompose ? '/usr/bin/docker-compose' : ''
  }
  const result = await run('bash', [path.join(repo, 'scripts/deploy.sh'), ...(options.args ?? [])], { cwd: dir, env })
    .then((r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (err: { code?: number, stdout?: string, stderr?: string }) => ({ code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }))
  const calls = await readFile(path.join(fake, 'calls'), 'utf8').then((s) => s.trim().split('\n'), () => [])
  return { ...result, calls, dir: repo }
}

t.test('deploy.sh from a fresh clone: .env with secrets, validated config, up, health, bootstrap, URLs', async (t) => {
  t.comment(realCompose ? 'mode: `docker compose config` answered by the real docker-compose' : 'mode: config not validated (docker-compose is not on PATH)')
  const { code, stdout, stderr, calls, dir } = await deploy(t)
  t.equal(code, 0, `exits 0${code === 0 ? '' : `: ${stderr}`}`)
  const env = parseEnvFile(await readFile(path.join(dir, '.env'), 'utf8'))
  t.match(env.POSTGRES_PASSWORD, /^[0-9a-f]{48}$/, '.env created and its secrets generated')
  t.match(stdout, /created \.env from \.env\.example/)
  t.ok(calls.includes('compose config'), 'validates compose.yaml')
  t.ok(calls.includes('compose up -d --build'), 'builds and starts')
  t.ok(calls.some((c) => c.startsWith('inspect -f') && c.includes('.State.Health')), 'reads the health of every container')
  t.ok(calls.includes('compose exec -T lago-api-integration node dist/scripts/bootstrap.js'), 'runs the bootstrap inside a service container')
  t.ok(calls.indexOf('compose up -d --build') < calls.indexOf('compose exec -T lago-api-integration node dist/scripts/bootstrap.js'), 'in that order')
  t.match(stdout, /every service is healthy/)
  for (const url of ['http://localhost:3002', 'http://localhost:8080', 'http://localhost:3000']) t.match(stdout, url, `prints ${url}`)
  t.notMatch(stdout + stderr, env.LAGO_ORG_API_KEY, 'prints no secret')

  const again = await deploy(t, { again: { code, stdout, stderr, calls, dir } })
  t.equal(again.code, 0, 'a second run over the existing deployment works too')
  t.match(again.stdout, /kept \(already set\): POSTGRES_PASSWORD/, 'and keeps the secrets')
  t.equal(parseEnvFile(await readFile(path.join(dir, '.env'), 'utf8')).POSTGRES_PASSWORD, env.POSTGRES_PASSWORD)
})

t.test('deploy.sh names a failed one-shot step and shows its last log lines', async (t) => {
  const states = HEALTHY.map((s) => s.startsWith('lago-migrate|') ? 'lago-migrate|exited||1|no' : s)
  const { code, stderr, calls } = await deploy(t, { states })
  t.equal(code, 1)
  t.match(stderr, /---- lago-migrate: exited with code 1; its last log lines:/)
  t.match(stderr, /last log line of lago-migrate/)
  t.ok(calls.includes('compose logs --tail 30 lago-migrate'))
  t.notOk(calls.some((c) => c.startsWith('compose exec')), 'no bootstrap after a failure')
})

t.test('deploy.sh gives up after --timeout naming the unhealthy service, with its logs', async (t) => {
  const states = HEALTHY.map((s) => s.startsWith('lago-api|') ? 'lago-api|running|unhealthy|0|unless-stopped' : s)
  const { code, stderr } = await deploy(t, { states, args: ['--timeout', '0'] })
  t.equal(code, 1)
  t.match(stderr, /---- lago-api: not healthy after 0s: \(unhealthy\); its last log lines:/)
  t.match(stderr, /last log line of lago-api/)
  t.match(stderr, /deploy: not healthy after 0s: lago-api \(unhealthy\)/)
})

t.test('deploy.sh stops early with a clear message when the tools are missing or the engine is down', async (t) => {
  const none = await deploy(t, { noEngine: true })
  t.equal(none.code, 1)
  t.match(none.stderr, /needs Docker with compose .* or Podman with podman compose/)
  const down = await deploy(t, { infoFails: true })
  t.equal(down.code, 1)
  t.match(down.stderr, /docker is installed but not answering/)
  const upFails = await deploy(t, { upFails: true })
  t.equal(upFails.code, 1)
  t.match(upFails.stderr, /`docker compose up` failed/)
  const badOption = await deploy(t, { args: ['--engine', 'lxc'] })
  t.equal(badOption.code, 1)
  t.match(badOption.stderr, /--engine must be docker or podman/)
})
