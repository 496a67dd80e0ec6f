import type { LiteLLMCall, ReadResult } from './calls.js'
import { compact, decimal, epochSeconds, exactCost, isObject, isoTime, litellmCallKey, text, textList, tokenCount, unstorableText } from './fields.js'
import type { Identities } from '../customer-mappings/identities.js'

/**
 * Reads one StandardLoggingPayload, as LiteLLM's generic_api logger sends it (one element of its JSON array or
 * NDJSON), or an element of the legacy v1 format (`generic_api_use_v1`, every value stringified).
 *
 * Only billing fields and a whitelist of attributes are read: messages, response, model_parameters,
 * hidden_params and the request's own metadata are never looked at, so no prompt or completion text is kept.
 */
export function readStandardLoggingPayload (item: unknown, receivedAt: Date): ReadResult {
  if (!isObject(item)) return { rejected: `not a StandardLoggingPayload object (got ${item === null ? 'null' : Array.isArray(item) ? 'an array' : typeof item})` }
  // The keys a call is stored and deduplicated by are refused rather than altered (LiteLLM makes them, never a user).
  for (const key of ['id', 'litellm_call_id', 'call_id']) {
    const fault = unstorableText(item[key])
    if (fault !== undefined) return { rejected: `${key} ${fault}` }
  }
  if (isLegacyV1(item)) return readLegacyV1(item, receivedAt)

  const id = text(item.id, 512)
  // One LiteLLM version named it call_id.
  const callId = text(item.litellm_call_id, 255) ?? text(item.call_id, 255)
  if (id === undefined && callId === undefined) return { rejected: 'has neither id nor litellm_call_id' }
  const metadata = isObject(item.metadata) ? item.metadata : {}
  const notes: string[] = []

  const cacheHit = item.cache_hit === true
  const started = epochSeconds(item.startTime) ?? epochSeconds(item.endTime)
  if (started === undefined) notes.push('no startTime: the time of receipt is used')
  const { cost, note } = exactCost(item.response_cost, 'response_cost')
  if (note !== undefined) notes.push(note)
  const tokensInput = tokenCount(item.prompt_tokens) ?? 0
  const tokensOutput = tokenCount(item.completion_tokens) ?? 0

  const identities: Identities = compact({
    end_user: text(item.end_user) ?? text(metadata.user_api_key_end_user_id),
    user: text(metadata.user_api_key_user_id),
    team: text(metadata.user_api_key_team_id) ?? text(metadata.team_id),
    org: text(metadata.user_api_key_org_id),
    key_alias: text(metadata.user_api_key_alias),
    key_hash: text(metadata.user_api_key_hash)
  })

  const usage = isObject(metadata.usage_object) ? metadata.usage_object : {}
  const error = isObject(item.error_information) ? item.error_information : {}
  const failed = item.status === 'failure'
  const call: LiteLLMCall = {
    requestId: callId ?? (id as string),
    ...litellmCallKey(id ?? (callId as string), cacheHit),
    ...(callId !== undefined ? { litellmCallId: callId } : {}),
    model: text(item.model) ?? text(item.model_group) ?? 'unknown',
    provider: text(item.custom_llm_provider, 100) ?? 'unknown',
    tokensInput,
    tokensOutput,
    totalTokens: tokenCount(item.total_tokens) ?? tokensInput + tokensOutput,
    costUsd: cost,
    apiKeyHash: identities.key_hash ?? null,
    timestamp: started ?? receivedAt,
    identity: { identities },
    ...(failed ? { failure: failureOf(error) } : {}),
    attributes: compact({
      litellm_id: id,
      call_type: text(item.call_type, 64),
      status: text(item.status, 32),
      cache_hit: typeof item.cache_hit === 'boolean' ? item.cache_hit : undefined,
      stream: item.stream === true ? true : undefined,
      model_group: text(item.model_group),
      model_id: text(item.model_id),
      trace_id: text(item.trace_id),
      team_alias: text(metadata.user_api_key_team_alias),
      org_alias: text(metadata.user_api_key_org_alias),
      request_tags: textList(item.request_tags),
      saved_cache_cost: decimal(item.saved_cache_cost),
      cached_tokens: tokenCount(isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details.cached_tokens : undefined),
      reasoning_tokens: tokenCount(isObject(usage.completion_tokens_details) ? usage.completion_tokens_details.reasoning_tokens : undefined),
      cost_breakdown: costBreakdown(item.cost_breakdown),
      error_class: failed ? text(error.error_class, 100) : undefined,
      error_code: failed ? text(error.error_code, 32) : undefined,
      spend_logs_metadata: isObject(metadata.spend_logs_metadata) ? metadata.spend_logs_metadata : undefined
    }),
    notes
  }
  return { call }
}

/** Why a failed call failed, without the error text (it can quote the prompt). */
function failureOf (error: Record<string, unknown>): string {
  const cls = text(error.error_class, 100)
  const code = text(error.error_code, 32)
  const provider = text(error.llm_provider, 100)
  const what = [cls, code !== undefined ? `status ${code}` : undefined, provider !== undefined ? `from ${provider}` : undefined].filter(Boolean).join(', ')
  return `the LiteLLM call failed${what !== '' ? ` (${what})` : ''}: stored, never billed`
}

const COST_PARTS = ['input_cost', 'output_cost', 'total_cost', 'tool_usage_cost', 'cache_read_cost', 'cache_creation_cost', 'reasoning_cost', 'original_cost']

function costBreakdown (value: unknown): Record<string, string> | undefined {
  if (!isObject(value)) return undefined
  const parts = compact(Object.fromEntries(COST_PARTS.map((k) => [k, decimal(value[k])])))
  return Object.keys(parts).length > 0 ? parts as Record<string, string> : undefined
}

// ---- legacy v1 (litellm.generic_api_use_v1 = True) -------------------------------------------------------------

/** v1 elements have every value stringified: a string cost or usage gives them away. */
function isLegacyV1 (item: Record<string, unknown>): boolean {
  return typeof item.cost === 'string' || typeof item.usage === 'string'
}

/** Matches `key` in a stringified Python dict or pydantic repr ("{'k': 'v'}", "k='v'", "k=12"). No g flag: reusable. */
function pythonFieldPattern (key: string): RegExp {
  return new RegExp(`['"]?\\b${key}['"]?\\s*[:=]\\s*(?:'([^']*)'|"([^"]*)"|(-?[\\d.]+(?:[eE][+-]?\\d+)?))`)
}

/** The fields read from v1's stringified usage and metadata. */
const PYTHON_FIELDS = [
  'prompt_tokens', 'completion_tokens', 'total_tokens', 'user_api_key_end_user_id', 'user_api_key_user_id',
  'user_api_key_team_id', 'user_api_key_org_id', 'user_api_key_alias', 'user_api_key_hash'
] as const
type PythonFieldKey = typeof PYTHON_FIELDS[number]

/** One pattern per field, compiled once rather than per field per payload. */
const PYTHON_FIELD_PATTERNS = new Map<string, RegExp>(PYTHON_FIELDS.map((key) => [key, pythonFieldPattern(key)]))

/** The value of `key` in a stringified Python dict or pydantic repr ("{'k': 'v'}", "k='v'", "k=12"). */
function pythonField (repr: string, key: PythonFieldKey): string | undefined {
  const m = (PYTHON_FIELD_PATTERNS.get(key) ?? pythonFieldPattern(key)).exec(repr)
  return m === null ? undefined : m[1] ?? m[2] ?? m[3]
}

function readLegacyV1 (item: Record<string, unknown>, receivedAt: Date): ReadResult {
  const id = text(item.id, 512)
  if (id === undefined) return { rejected: 'legacy v1 payload without an id' }
  const notes = ['legacy v1 generic_api payload (every value stringified)']
  const usage = typeof item.usage === 'string' ? item.usage : ''
  const metadata = typeof item.metadata === 'string' ? item.metadata : ''
  const cacheHit = item.cache_hit === 'True' || item.cache_hit === true
  const started = isoTime(item.startTime)
  if (started === undefined) notes.push('no readable startTime: the time of receipt is used')
  const timestamp = started ?? receivedAt
  const { cost, note } = exactCost(item.cost, 'cost')
  if (note !== undefined) notes.push(note)
  const tokensInput = tokenCount(pythonField(usage, 'prompt_tokens')) ?? 0
  const tokensOutput = tokenCount(pythonField(usage, 'completion_tokens')) ?? 0
  const identities: Identities = compact({
    end_user: text(item.user) ?? text(pythonField(metadata, 'user_api_key_end_user_id')),
    user: text(pythonField(metadata, 'user_api_key_user_id')),
    team: text(pythonField(metadata, 'user_api_key_team_id')),
    org: text(pythonField(metadata, 'user_api_key_org_id')),
    key_alias: text(pythonField(metadata, 'user_api_key_alias')),
    key_hash: text(pythonField(metadata, 'user_api_key_hash'))
  })
  return {
    call: {
      // v1 ids are the response id, shared by every cache hit of it: the start time tells those apart.
      requestId: cacheHit ? `${id}_cache_hit@${timestamp.getTime()}` : id,
      ...litellmCallKey(id, cacheHit),
      model: text(item.model) ?? 'unknown',
      provider: 'unknown',
      tokensInput,
      tokensOutput,
      totalTokens: tokenCount(pythonField(usage, 'total_tokens')) ?? tokensInput + tokensOutput,
      costUsd: cost,
      apiKeyHash: identities.key_hash ?? null,
      timestamp,
      identity: { identities },
      attributes: compact({ litellm_id: id, call_type: text(item.call_type, 64), cache_hit: cacheHit, format: 'generic_api_v1' }),
      notes
    }
  }
}
