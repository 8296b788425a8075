// UCAN authorization cost: Ed25519 through node:crypto against ucanto's pure-JS default, and a full
// tlog/append (authorization + receipt) through the ucanto server in process, with a log stub.
import { CAR } from '@ucanto/transport'
import { Message } from '@ucanto/core'
import { Verifier } from '@ucanto/principal'
import {
  appendInvocation, createFastSigner, createPrincipalParser, createUcanService, delegateAgentToService,
  delegateSpaceToAgent, generateKey,
} from '../dist/src/ucan/index.js'

async function rate(n, op) {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await op(i)
  return (n * 1000) / (performance.now() - t0)
}

const stubLog = {
  async append(space) {
    return { logId: space, origin: 'o', index: 0, treeSize: 1, rootHash: '', checkpoint: '', inclusionProof: [], published: true }
  },
  async read() {
    return undefined
  },
}

export async function run(report) {
  const [space, agent, service] = [await generateKey(), await generateKey(), await generateKey()]
  const payload = new Uint8Array(1024).fill(7)
  const sig = await agent.sign(payload)
  const fast = createPrincipalParser().parse(agent.did())
  const slow = Verifier.parse(agent.did())
  report('Ed25519 verify, node:crypto principal parser', await rate(3000, () => fast.verify(payload, sig)), 'verifies/s')
  report('Ed25519 verify, ucanto default (@noble/ed25519)', await rate(300, () => slow.verify(payload, sig)), 'verifies/s')
  const fastSigner = createFastSigner(agent)
  report('Ed25519 sign, node:crypto signer', await rate(3000, () => fastSigner.sign(payload)), 'signs/s')
  report('Ed25519 sign, ucanto default', await rate(500, () => agent.sign(payload)), 'signs/s')

  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent] })
  const n = 300
  const requests = async (fresh) =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const inv = await appendInvocation({ agent, service, space: space.did(), entry: new Uint8Array(256).fill(i % 256), ...(fresh ? { spaceToAgent } : { agentToService }) })
        return CAR.request.encode(await Message.build({ invocations: [await inv.delegate()] }))
      }),
    )
  const server = createUcanService({ signer: service, log: stubLog })
  const warm = await requests(false)
  await rate(50, (i) => server.request(warm[i])) // warm up
  const same = await requests(false)
  report('tlog/append in process, one Agent→Service delegation reused (grant cache warm)', await rate(n, (i) => server.request(same[i])), 'appends/s')
  const fresh = await requests(true)
  report('tlog/append in process, a fresh Agent→Service delegation per entry', await rate(n, (i) => server.request(fresh[i])), 'appends/s')
}
