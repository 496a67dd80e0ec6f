import type { AddressInfo } from 'node:net'
import { buildLiteLLMSimulator, type LiteLLMSimulatorApp, type LiteLLMSimulatorOptions } from './app.js'

export type { LiteLLMSimulatorOptions, LoggedRequest, RecordedCall } from './app.js'
export type { CallSpec, SimulatedCall } from './calls.js'
export { pythonIsoformat, simulateCall, spendLogRow, standardLoggingPayload } from './calls.js'
export { buildLiteLLMSimulator }

export interface LiteLLMSimulator extends LiteLLMSimulatorApp {
  /** Base URL of the simulated proxy (LITELLM_URL). */
  url: string
  close: () => Promise<void>
}

/** Starts the simulator on 127.0.0.1 and a free port (by default). */
export async function startLiteLLMSimulator (options: LiteLLMSimulatorOptions & { host?: string, port?: number } = {}): Promise<LiteLLMSimulator> {
  const sim = buildLiteLLMSimulator(options)
  const host = options.host ?? '127.0.0.1'
  await sim.app.listen({ host, port: options.port ?? 0 })
  const { port } = sim.app.server.address() as AddressInfo
  return { ...sim, url: `http://${host}:${port}`, close: async () => { await sim.app.close() } }
}
