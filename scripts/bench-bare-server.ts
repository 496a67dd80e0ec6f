// The ceiling for the benchmark: a bare Fastify route that parses the same JSON and answers 202, no database.
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.post('/webhooks/litellm', async (_request, reply) => await reply.code(202).send({ status: 'accepted' }))
app.post('/webhooks/litellm/batch', async (_request, reply) => await reply.code(202).send({ status: 'accepted' }))
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`)
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
