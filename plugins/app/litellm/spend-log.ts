import type { ReadResult } from './calls.js'
import { compact, exactCost, isObject, isoTime, litellmCallKey, text, textList, tokenCount, unstorableText } from './fields.js'
import type { Identities } from '../customer-mappings/identities.js'

function objectOf (value: unknown): Record<string, unknown> {
  if (isObject(value)) return value
  if (typeof value !== 'string') return {}
  try {
    const parsed: unknown = JSON.parse(value)
    return isObject(parsed) ? parsed : {}
  } catch {
    return {}
  }
}

/**
 * Reads one row of LiteLLM's spend logs (LiteLLM_SpendLogs, as GET /spend/logs and /spend/logs/ui return it).
 * Its request_id is the response id, else the call id, renamed "<id>_cache_hit<time>" for a cache hit: the same
 * id a StandardLoggingPayload carries as `id`, which is how a pulled row and a pushed payload of one call meet.
 * metadata and request_tags may come as JSON text or already parsed. The status column is newer; older rows
 * keep it in metadata.status. A row without request_id is a summary (an old LiteLLM answering aggregated data).
 */
export function readSpendLog (row: unknown): ReadResult {
  if (!isObject(row)) return { rejected: 'not a spend log row' }
  const fault = unstorableText(row.request_id)
  if (fault !== undefined) return { rejected: `spend log row request_id ${fault}` }
  const requestId = text(row.request_id, 512)
  if (requestId === undefined) return { rejected: 'spend log row without request_id (summarized spend data, not a call)' }
  const started = isoTime(row.startTime) ?? isoTime(row.endTime)
  if (started === undefined) return { rejected: `spend log row ${requestId} has no readable startTime` }
  const metadata = objectOf(row.metadata)
  const notes: string[] = []
  const { cost, note } = exactCost(row.spend, 'spend')
  if (note !== undefined) notes.push(note)
  const cacheHit = row.cache_hit === true || row.cache_hit === 'True' || row.cache_hit === 'true'
  const status = text(row.status, 32) ?? text(metadata.status, 32)
  const keyHash = text(row.api_key)
  const identities: Identities = compact({
    end_user: text(row.end_user),
    user: text(row.user) ?? text(metadata.user_api_key_user_id),
    team: text(row.team_id) ?? text(metadata.user_api_key_team_id),
    org: text(row.organization_id) ?? text(metadata.user_api_key_org_id),
    key_alias: text(metadata.user_api_key_alias),
    key_hash: keyHash
  })
  const tokensInput = tokenCount(row.prompt_tokens) ?? 0
  const tokensOutput = tokenCount(row.completion_tokens) ?? 0
  const error = isObject(metadata.error_information) ? metadata.error_information : {}
  const failed = status === 'failure'
  return {
    call: {
      requestId,
      ...litellmCallKey(requestId, cacheHit),
      model: text(row.model) ?? text(row.model_group) ?? 'unknown',
      provider: text(row.custom_llm_provider, 100) ?? 'unknown',
      tokensInput,
      tokensOutput,
      totalTokens: tokenCount(row.total_tokens) ?? tokensInput + tokensOutput,
      costUsd: cost,
      apiKeyHash: keyHash ?? null,
      timestamp: started,
      identity: { identities },
      ...(failed ? { failure: `the LiteLLM call failed${text(error.error_class, 100) !== undefined ? ` (${text(error.error_class, 100)})` : ''}: stored, never billed` } : {}),
      attributes: compact({
        litellm_id: requestId,
        call_type: text(row.call_type, 64),
        status,
        cache_hit: cacheHit,
        model_group: text(row.model_group),
        model_id: text(row.model_id),
        trace_id: text(row.session_id),
        team_alias: text(metadata.user_api_key_team_alias),
        request_tags: textList(row.request_tags)
      }),
      notes
    }
  }
}
