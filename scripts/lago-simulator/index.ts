import type { AddressInfo } from 'node:net'
import { buildLagoSimulator, type LagoSimulatorApp, type LagoSimulatorOptions } from './app.js'

export type { LagoSimulatorOptions } from './app.js'
export type { ChaosConfig, EventRejection, Fault, FaultScope, OutageMode } from './faults.js'
export type { LoggedRequest } from './request-log.js'
export type { ClosePeriodOptions, InvoicePatch, UnbilledEvent, UnbilledReason } from './state.js'
export { FaultController } from './faults.js'
export { LagoState } from './state.js'
export { RequestLog } from './request-log.js'
export { WebhookSender } from './webhooks.js'
export type { DeliveryRecord, WebhookEndpointRecord, WebhookSenderOptions } from './webhooks.js'
export { buildLagoSimulator }

/** A running simulator: the app and its state, faults and request log, plus where to reach it. */
export interface LagoSimulator extends LagoSimulatorApp {
  /** Base URL of the simulated Lago (the client adds /api/v1). */
  url: string
  apiKey: string
  close: () => Promise<void>
}

export interface StartOptions extends LagoSimulatorOptions {
  host?: string
  /** 0 (default) picks a free port. */
  port?: number
}

/** Starts the simulator on 127.0.0.1 and a free port (by default) and returns its handles. */
export async function startLagoSimulator (options: StartOptions = {}): Promise<LagoSimulator> {
  const sim = buildLagoSimulator(options)
  const { app, state, faults } = sim
  const host = options.host ?? '127.0.0.1'
  await app.listen({ host, port: options.port ?? 0 })
  const { port } = app.server.address() as AddressInfo
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  state.publicUrl = url
  sim.webhooks.issuer ??= url

  // Refused connections: stop listening (and drop open keep-alive sockets), listen again on the same port.
  let refusal: NodeJS.Timeout | undefined
  const relisten = (): void => {
    refusal = undefined
    app.server.listen(port, host)
  }
  faults.refuseConnections = (ms) => {
    if (refusal !== undefined) clearTimeout(refusal)
    else {
      app.server.close()
      app.server.closeAllConnections()
    }
    refusal = setTimeout(relisten, ms)
  }

  return {
    ...sim,
    url,
    get apiKey () { return sim.settings.apiKey },
    async close () {
      if (refusal !== undefined) {
        clearTimeout(refusal)
        relisten()
        await new Promise((resolve) => app.server.once('listening', resolve))
      }
      await app.close()
    }
  }
}
