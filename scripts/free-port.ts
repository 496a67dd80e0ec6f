import { createServer } from 'node:net'

/**
 * A TCP port free right now on 127.0.0.1, found by asking the system (listen on port 0), never by guessing:
 * for processes started by a test or the benchmark that need their port before they listen.
 */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    }).on('error', reject)
  })
}
