import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import path from 'node:path'
import { runTypeScript } from './app.js'

const root = path.join(import.meta.dirname, '..', '..')

export interface ServerProcess { child: ChildProcess, output: () => string, exited: Promise<[number | null, NodeJS.Signals | null]> }

/** Runs server.ts as `npm start` does, with only these variables (cwd outside the repository: no .env leaks in). */
export function startServer (env: Record<string, string | undefined>, options: { uid?: number, gid?: number, cwd?: string } = {}): ServerProcess {
  let output = ''
  const args = runTypeScript(path.join(root, 'server.ts'))
  // As another user, without tap's coverage hook (NODE_OPTIONS): it would write into .tap/, which that user cannot.
  const [command, argv] = options.uid !== undefined ? ['env', ['-u', 'NODE_OPTIONS', process.execPath, ...args]] : [process.execPath, args]
  const child = spawn(command, argv, {
    cwd: options.cwd ?? os.tmpdir(),
    env: { PATH: process.env.PATH, FASTIFY_AUTOLOAD_TYPESCRIPT: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: options.uid,
    gid: options.gid
  })
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  return { child, output: () => output, exited }
}

import { freePort } from '../../scripts/free-port.js'
export { freePort }

/** Polls until `predicate` holds (no fixed sleeps in assertions). */
export async function waitFor (predicate: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms
  while (!await predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
