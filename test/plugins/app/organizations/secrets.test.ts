import { createDecipheriv, randomBytes } from 'node:crypto'
import t from 'tap'
import { decryptSecret, encryptSecret, parseSecretsKey, SecretDecryptionError, secretContext } from '../../../../plugins/app/organizations/secrets.js'

const key = randomBytes(32)
const context = secretContext('acme', 'lago_api_key')

t.test('round trip; each encryption differs (random IV); the plaintext is not in the stored text', async (t) => {
  const secret = 'lago-key-ÄÖ-' + randomBytes(16).toString('hex')
  const a = encryptSecret(key, secret, context)
  const b = encryptSecret(key, secret, context)
  t.not(a, b)
  t.notMatch(a, secret)
  t.equal(decryptSecret(key, a, context), secret)
  t.equal(decryptSecret(key, b, context), secret)
  t.equal(decryptSecret(key, encryptSecret(key, '', context), context), '')
})

t.test('it is AES-256-GCM as documented: v1.<base64(iv 12 | tag 16 | ciphertext)>, context as AAD', async (t) => {
  const stored = encryptSecret(key, 'plain', context)
  const raw = Buffer.from(stored.slice(3), 'base64')
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
  d.setAAD(Buffer.from(context))
  d.setAuthTag(raw.subarray(12, 28))
  t.equal(Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString(), 'plain')
})

t.test('tampering with any byte is an error, never a wrong plaintext', async (t) => {
  const stored = encryptSecret(key, 'the lago key', context)
  const raw = Buffer.from(stored.slice(3), 'base64')
  for (const at of [0, 11, 12, 27, 28, raw.length - 1]) {
    const bad = Buffer.from(raw)
    bad[at] ^= 0x01
    t.throws(() => decryptSecret(key, 'v1.' + bad.toString('base64'), context), SecretDecryptionError, `byte ${at}`)
  }
  t.throws(() => decryptSecret(key, 'v1.' + raw.subarray(0, 20).toString('base64'), context), SecretDecryptionError, 'truncated')
  t.throws(() => decryptSecret(key, stored.slice(3), context), SecretDecryptionError, 'no version')
})

t.test('a wrong key or another organization\'s context is an error', async (t) => {
  const stored = encryptSecret(key, 'the lago key', context)
  t.throws(() => decryptSecret(randomBytes(32), stored, context), SecretDecryptionError)
  t.throws(() => decryptSecret(key, stored, secretContext('other', 'lago_api_key')), SecretDecryptionError)
  t.throws(() => decryptSecret(key, stored, secretContext('acme', 'webhook_secret')), SecretDecryptionError)
})

t.test('the key must be base64 of 32 bytes; the error never shows the value', async (t) => {
  const good = randomBytes(32).toString('base64')
  t.same(parseSecretsKey(good), Buffer.from(good, 'base64'))
  const short = randomBytes(16).toString('base64')
  t.throws(() => parseSecretsKey(short), /ORGANIZATION_SECRETS_KEY: must be 32 bytes of base64 \(got 16 bytes/)
  try { parseSecretsKey(short) } catch (err) { t.notMatch((err as Error).message, short) }
  t.throws(() => parseSecretsKey('not base64 !!'), /must be base64/)
})
