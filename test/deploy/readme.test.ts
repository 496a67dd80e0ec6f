// README's deployment guide stays true to the repository: its SQL runs on the service's schema, its shell blocks
// parse, and every compose service, script and file it names exists.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { Value } from '@sinclair/typebox/value'
import { OrganizationCreate } from '../../schemas/organizations.js'
import { build, sqlClient } from '../helpers/app.js'
import { parseEnvFile, readRawCompose, repoFile } from './compose-config.js'

const run = promisify(execFile)

const readme = await readFile(repoFile('README.md'), 'utf8')
const HEADING = '\n## Deploy with Docker or Podman\n'
const start = readme.indexOf(HEADING)
// Up to the next top-level section, if one is ever added after it.
const next = readme.slice(start + HEADING.length).search(/^## /m)
const guide = readme.slice(start, next === -1 ? undefined : start + HEADING.length + next)
const blocks = (lang: string): string[] => [...guide.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1])
const compose = await readRawCompose()
const services = Object.keys(compose.services)

t.test('README has the guide, with the seed README\'s parts', async (t) => {
  t.ok(start > 0, '## Deploy with Docker or Podman')
  for (const part of ['Quick start', 'Verify', 'Logs', 'Database access', 'Backup and restore', 'Scaling',
    'Troubleshooting', 'Production notes', 'LiteLLM integration']) {
    t.match(guide, new RegExp(`^### ${part}$`, 'm'), part)
  }
})

t.test('every SQL block runs on the service\'s database', async (t) => {
  await build(t) // migrates this file's database as the service does at start
  const sql = await sqlClient(t)
  const statements = blocks('sql')
  t.ok(statements.length > 0)
  for (const block of statements) {
    for (const statement of block.split(/;\s*(?:\n|$)/).map((s) => s.replace(/^--.*$/gm, '').trim()).filter((s) => s !== '')) {
      await t.resolves(sql.query(statement), statement.split('\n')[0])
    }
  }
})

t.test('every shell block parses; the services, scripts and files it names exist', async (t) => {
  const shell = blocks('bash')
  for (const block of shell) await t.resolves(run('bash', ['-n', '-c', block]), block.split('\n')[0])

  const text = shell.join('\n') + '\n' + [...guide.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]).join('\n')
  for (const m of text.matchAll(/docker compose (exec|logs|run|stop|start|restart)\b([^|&;#\n]*)/g)) {
    const tokens = m[2].trim().split(/\s+/).filter((w) => w !== '')
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i].startsWith('-')) {
        if (tokens[i] === '--tail') i++
        continue
      }
      t.ok(services.includes(tokens[i]), `${tokens[i]} (in "${m[0].trim()}") is a compose service`)
      if (m[1] === 'exec' || m[1] === 'run') break
    }
  }
  for (const [, name] of text.matchAll(/--scale ([a-z-]+)=/g)) t.ok(services.includes(name), `--scale ${name}: a compose service`)
  for (const [file] of text.matchAll(/\bscripts\/[\w-]+\.sh\b/g)) t.ok(existsSync(repoFile(file)), `${file} exists`)
  for (const [, name] of text.matchAll(/\bdist\/scripts\/([\w-]+)\.js\b/g)) {
    t.ok(existsSync(repoFile(`scripts/${name}.ts`)), `dist/scripts/${name}.js is built from scripts/${name}.ts`)
  }
  for (const file of ['compose.yaml', 'Containerfile', 'Caddyfile', '.env.example']) t.match(guide, file)
})

// The Organizations section's compose example: two organizations of one Lago, with compose.yaml's names.
const ORGS = '\n## Organizations\n'
const orgsStart = readme.indexOf(ORGS)
const orgsNext = readme.slice(orgsStart + ORGS.length).search(/^## /m)
const organizations = readme.slice(orgsStart, orgsStart + ORGS.length + orgsNext)
const COMPOSE_EXAMPLE = '\n### Compose: two organizations of one Lago\n'
const example = organizations.slice(organizations.indexOf(COMPOSE_EXAMPLE), organizations.indexOf('\n### Routing\n'))

t.test('the Organizations compose example: its shell parses, its variables reach the service, its calls match the API', async (t) => {
  t.ok(orgsStart > 0 && organizations.includes(COMPOSE_EXAMPLE), '### Compose: two organizations of one Lago')
  const shell = [...example.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1])
  t.ok(shell.length >= 2, 'the .env lines and the admin API calls')
  for (const block of shell) await t.resolves(run('bash', ['-n', '-c', block]), block.split('\n')[0])
  const code = shell.join('\n')

  // Every .env variable it sets exists in .env.example and is passed by compose.yaml to the service.
  const envExample = parseEnvFile(await readFile(repoFile('.env.example'), 'utf8'))
  const serviceEnv = Object.values(compose.services['lago-api-integration'].environment ?? {}).map(String).join('\n')
  const set = [...code.matchAll(/\^([A-Z][A-Z0-9_]+)=/g)].map((m) => m[1])
  t.same([...new Set(set)].sort(), ['ADMIN_API_KEYS', 'ORGANIZATION_SECRETS_KEY'])
  for (const name of set) {
    t.ok(name in envExample, `${name} is in .env.example`)
    t.ok(serviceEnv.includes(`\${${name}:-}`), `compose.yaml passes ${name} to lago-api-integration`)
  }
  const spans = [...example.matchAll(/`([^`\n]+)`/g)].map((m) => m[1])
  for (const span of spans) {
    const name = /^([A-Z][A-Z0-9_]{3,})(?:=.*)?$/.exec(span)?.[1]
    if (name !== undefined) t.ok(name in envExample, `${name} (named in the text) is in .env.example`)
  }
  for (const [, name] of code.matchAll(/docker compose up -d ([a-z-]+)/g)) t.ok(services.includes(name), `${name} is a compose service`)

  // The create call's body is one the API accepts, against the same Lago as default in compose.yaml.
  const bodies = [...code.matchAll(/-d '(\{[^']*\})'/g)].map((m) => JSON.parse(m[1]) as Record<string, unknown>)
  t.equal(bodies.length, 1)
  for (const body of bodies) {
    t.ok(Value.Check(OrganizationCreate, body), `POST /api/organizations accepts ${JSON.stringify(body)}`)
    t.equal(body.lago_api_url, compose.services['lago-api-integration'].environment?.LAGO_API_URL, 'the same Lago as default')
    t.ok(services.includes(new URL(String(body.lago_api_url)).hostname), 'Lago\'s compose service')
  }
})
