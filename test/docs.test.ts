import { readFile } from 'node:fs/promises'
import t from 'tap'
import { ConfigSchema } from '../schemas/config.js'
import { loadConfig } from '../plugins/external/config.js'

const keys = Object.keys(ConfigSchema.properties)

t.test('.env.example documents every variable and is itself a valid configuration', async (t) => {
  const text = await readFile(new URL('../.env.example', import.meta.url), 'utf8')
  const variables = (section: string): Set<string> => new Set([...section.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]))
  // The [service] section holds the service's variables; the [stack] section after it, compose.yaml's
  // (test/deploy/env-example.test.ts checks that one).
  const [service, stack] = text.split(/^# =+ \[stack\]/m)
  t.ok(stack !== undefined, '.env.example has a [stack] section after the [service] one')
  const documented = variables(text)
  for (const key of keys) t.ok(documented.has(key), `${key} is in .env.example`)
  for (const key of variables(service)) t.ok(keys.includes(key), `${key} in .env.example's [service] section is a variable the service reads`)

  const env: Record<string, string> = {}
  for (const m of text.matchAll(/^([A-Z][A-Z0-9_]+)=(\S*)/gm)) env[m[1]] = m[2]
  t.doesNotThrow(() => loadConfig(env), 'the example values parse')
})

t.test('README documents every variable in its configuration table', async (t) => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  for (const key of keys) t.match(readme, new RegExp(`^\\| \`${key}\` \\|`, 'm'), `${key} is in README's table`)
})
