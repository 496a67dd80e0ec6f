import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

/**
 * Organization secrets at rest (Lago API keys, HMAC keys, webhook secrets): AES-256-GCM with a 96-bit random IV.
 * The stored text is `v1.<base64(iv | tag | ciphertext)>`. The context (organization id and which secret) is the
 * additional authenticated data, so a ciphertext copied onto another organization or column does not decrypt.
 */
const VERSION = 'v1.'
const IV_BYTES = 12
const TAG_BYTES = 16
export const SECRETS_KEY_BYTES = 32

/** A decryption failed: wrong key, tampered or truncated ciphertext, or another context. Says nothing more. */
export class SecretDecryptionError extends Error {
  constructor (message = 'organization secret cannot be decrypted (wrong ORGANIZATION_SECRETS_KEY, or the stored value was altered)') {
    super(message)
    this.name = 'SecretDecryptionError'
  }
}

/** The key from ORGANIZATION_SECRETS_KEY: base64 of exactly 32 bytes. Throws a message naming the problem, never the value. */
export function parseSecretsKey (base64: string): Buffer {
  const trimmed = base64.trim()
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) throw new Error('ORGANIZATION_SECRETS_KEY: must be base64 (e.g. `openssl rand -base64 32`)')
  const key = Buffer.from(trimmed, 'base64')
  if (key.length !== SECRETS_KEY_BYTES) throw new Error(`ORGANIZATION_SECRETS_KEY: must be ${SECRETS_KEY_BYTES} bytes of base64 (got ${key.length} bytes; e.g. \`openssl rand -base64 32\`)`)
  return key
}

export function encryptSecret (key: Buffer, plaintext: string, context: string): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(context, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')
}

export function decryptSecret (key: Buffer, stored: string, context: string): string {
  if (!stored.startsWith(VERSION)) throw new SecretDecryptionError('organization secret has an unknown format')
  const raw = Buffer.from(stored.slice(VERSION.length), 'base64')
  if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretDecryptionError()
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
  decipher.setAAD(Buffer.from(context, 'utf8'))
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
  try {
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
  } catch {
    throw new SecretDecryptionError()
  }
}

/** Which secret of which organization: the additional authenticated data of its ciphertext. */
export type SecretKind = 'lago_api_key' | 'lago_webhook_hmac_key' | 'webhook_secret' | 'litellm_master_key'
export const secretContext = (organizationId: string, kind: SecretKind): string => `organization:${organizationId}:${kind}`
