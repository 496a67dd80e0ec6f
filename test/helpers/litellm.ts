import type { FastifyInstance } from 'fastify'
import type pg from 'pg'
import { startLiteLLMSimulator, type LiteLLMSimulator, type LiteLLMSimulatorOptions } from '../../scripts/litellm-simulator/index.js'

type TestContext = { teardown: (fn: () => unknown) => void }

export const INGEST_TOKEN = 'ingest-token'
export const bearer = { authorization: `Bearer ${INGEST_TOKEN}` }

/** A LiteLLM spend-logs simulator on a free port, closed when the test ends. */
export async function litellmSimulator (t: TestContext, options: LiteLLMSimulatorOptions = {}): Promise<LiteLLMSimulator> {
  const sim = await startLiteLLMSimulator(options)
  t.teardown(() => sim.close())
  return sim
}

/** POSTs a body as LiteLLM's generic_api logger does (raw text, application/json). */
export async function postGeneric (app: FastifyInstance, body: unknown, headers: Record<string, string> = bearer) {
  return await app.inject({
    method: 'POST',
    url: '/webhooks/litellm/generic',
    headers: { 'content-type': 'application/json', 'user-agent': 'litellm/1.80.0', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body)
  })
}

/** POSTs to the drop-in Lago endpoints as LiteLLM's lago callback does. */
export async function postLago (app: FastifyInstance, path: '/api/v1/events' | '/api/v1/events/batch', body: unknown, headers: Record<string, string> = bearer) {
  return await app.inject({
    method: 'POST',
    url: path,
    headers: { 'content-type': 'application/json', 'user-agent': 'litellm/1.80.0', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body)
  })
}

export interface StoredEvent {
  request_id: string
  customer_external_id: string
  status: string
  source: string
  model: string
  tokens_input: number
  tokens_output: number
  total_tokens: number
  cost_usd: string
  timestamp: Date
  metadata: Record<string, unknown>
  last_error: { kind: string, message: string } | null
  litellm_id: string | null
}

/** Stored usage events, by a WHERE clause. */
export async function storedEvents (db: pg.Client, where: string, params: unknown[] = []): Promise<StoredEvent[]> {
  const { rows } = await db.query(`SELECT request_id, customer_external_id, status, source, model, tokens_input, tokens_output, total_tokens,
      cost_usd::text, "timestamp", metadata, last_error, litellm_id FROM litellm_usage_events WHERE ${where} ORDER BY id`, params)
  return rows
}
