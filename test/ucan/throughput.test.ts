/**
 * Throughput figures for the node:crypto principal and a full tlog/append. Skipped unless
 * UCAN_BENCH=1 (`UCAN_BENCH=1 npx vitest run test/ucan/throughput.test.ts`); prints ops/s.
 */
import { expect, test } from 'vitest'
import type { API } from '@ucanto/core'
import { Verifier as DefaultVerifier } from '@ucanto/principal'
import {
  appendInvocation,
  createFastSigner,
  createPrincipalParser,
  createUcanService,
  delegateAgentToService,
  delegateSpaceToAgent,
} from '../../src/ucan/index.js'
import { RecordingLog, type RequestTarget, encodeRequest, now, principals } from './helpers.js'

const bench = test.runIf(process.env.UCAN_BENCH === '1')

async function rate(n: number, op: (i: number) => unknown): Promise<number> {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await op(i)
  return Math.round((n * 1000) / (performance.now() - t0))
}

bench('ed25519 verify and sign: node:crypto vs ucanto (@noble/ed25519)', async () => {
  const P = await principals()
  const payload = new Uint8Array(1024).fill(7)
  const sig = await P.agent.sign(payload)
  const fast = createPrincipalParser().parse(P.agent.did())
  const slow = DefaultVerifier.parse(P.agent.did())
  const fastSigner = createFastSigner(P.agent)
  const figures = {
    verifyFast: await rate(3000, () => fast.verify(payload, sig)),
    verifySlow: await rate(300, () => slow.verify(payload, sig)),
    signFast: await rate(3000, () => fastSigner.sign(payload)),
    signSlow: await rate(500, () => P.agent.sign(payload)),
  }
  console.log('ops/s', figures)
  expect(figures.verifyFast).toBeGreaterThan(figures.verifySlow)
}, 120_000)

bench('full tlog/append through server.request, in process, sequential', async () => {
  const P = await principals()
  const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 3600 })
  const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 3600 })
  const n = 200
  const build = async () =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const inv = await appendInvocation({
          agent: P.agent,
          service: P.service,
          space: P.space.did(),
          entry: new Uint8Array(256).fill(i % 256),
          agentToService,
        })
        return encodeRequest([await inv.delegate()])
      }),
    )
  const run = async (server: RequestTarget, reqs: Awaited<ReturnType<typeof build>>) =>
    rate(n, (i) => server.request(reqs[i] as { headers: Record<string, string>; body: Uint8Array }))
  const fast = createUcanService({ signer: P.service, log: new RecordingLog() })
  // A did-wrapped signer is not recognised as plain Ed25519, so receipts are signed by ucanto.
  const stock = createUcanService({
    signer: P.service.withDID(P.service.did()) as API.Signer,
    log: new RecordingLog(),
    principal: DefaultVerifier,
  })
  await run(fast, await build()) // warm up
  const figures = { fast: await run(fast, await build()), stock: await run(stock, await build()) }
  console.log('tlog/append per second', figures)
  expect(figures.fast).toBeGreaterThan(0)
}, 300_000)
