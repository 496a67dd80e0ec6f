import type { CallOptions, WebhookEndpointInput } from '../lago/client.js'
import type { Ensured } from './defaults.js'

/** The part of the Lago client this needs. */
export interface LagoWebhookEndpointsApi {
  listWebhookEndpoints: (query?: { page?: number, per_page?: number }, options?: CallOptions) => Promise<{ webhook_endpoints: Array<{ lago_id: string, webhook_url: string, signature_algo?: 'jwt' | 'hmac' }>, meta: { next_page?: number | null } }>
  createWebhookEndpoint: (endpoint: WebhookEndpointInput, options?: CallOptions) => Promise<unknown>
  updateWebhookEndpoint: (lagoId: string, endpoint: WebhookEndpointInput, options?: CallOptions) => Promise<unknown>
}

/** Where Lago must send its webhooks: <PUBLIC_URL>/webhooks/lago. */
export const webhookUrl = (publicUrl: string): string => `${publicUrl.replace(/\/+$/, '')}/webhooks/lago`

/**
 * Makes sure Lago has exactly one webhook endpoint for this service, signing with `algo`: found by its URL (every
 * page), its algorithm corrected when it differs, created otherwise. Idempotent: a concurrent creation by another
 * replica (422 value_already_exist on the URL) counts as existing.
 */
export async function ensureWebhookEndpoint (lago: LagoWebhookEndpointsApi, publicUrl: string, algo: 'jwt' | 'hmac'): Promise<Ensured | 'updated'> {
  const url = webhookUrl(publicUrl)
  const existing = async (): Promise<{ lago_id: string, signature_algo?: 'jwt' | 'hmac' } | undefined> => {
    for (let page = 1; ; page++) {
      const { webhook_endpoints: endpoints, meta } = await lago.listWebhookEndpoints({ page, per_page: 100 })
      const found = endpoints.find((e) => e.webhook_url === url)
      if (found !== undefined) return found
      if (meta.next_page == null) return undefined
    }
  }
  const found = await existing()
  const wanted: WebhookEndpointInput = { webhook_url: url, signature_algo: algo, name: 'lago-api-integration' }
  if (found !== undefined) {
    if ((found.signature_algo ?? 'jwt') === algo) return 'existing'
    await lago.updateWebhookEndpoint(found.lago_id, wanted)
    return 'updated'
  }
  try {
    await lago.createWebhookEndpoint(wanted)
    return 'created'
  } catch (err) {
    if ((await existing()) !== undefined) return 'existing'
    throw err
  }
}
