// The one-pass canonical check of a UCAN block (src/ucan/canonical-ucan.ts `isCanonicalUcanBlock`)
// against what it spares: dag-ucan's re-encoding of the decoded UCAN (`UCAN.write`, as
// delegation.ts `checkContentAddressed` did, and `UCAN.encode`, as preverify.ts did), on the
// blocks every append carries: the invocation (with its `nb.delegation` string), its
// Agent→Service delegation (one proof link), and the Space→Agent proof.
//
// Figures: CPU µs per block (process.cpuUsage, user + system), min / median / max over the
// repetitions; the variants interleaved in each repetition. The decode (`ucan.data`) is not
// counted: it happens for every UCAN anyway.
//
//   npm run build && node bench/canonical-ucan.js
//   BENCH_CU_ITERATIONS (per variant and block, per repetition; default 20000), BENCH_CU_REPS (default 3)
import { cpuUsage } from 'node:process'
import { UCAN } from '@ucanto/core'
import { isCanonicalUcanBlock } from '../dist/src/ucan/canonical-ucan.js'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey } from '../dist/src/ucan/client.js'

const ITERATIONS = Number(process.env.BENCH_CU_ITERATIONS ?? 20_000)
const REPS = Number(process.env.BENCH_CU_REPS ?? 3)

const [space, agent, service] = await Promise.all([generateKey(), generateKey(), generateKey()])
const spaceToAgent = await delegateSpaceToAgent({ space, agent })
const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent] })
const invocation = await (await appendInvocation({ agent, service, space: space.did(), entry: new Uint8Array(64), agentToService })).delegate()

const blocks = { invocation, 'Agent→Service': agentToService, 'Space→Agent': spaceToAgent }
for (const d of Object.values(blocks)) if (!isCanonicalUcanBlock(d.root.bytes)) throw new Error('a client-made UCAN is not taken by the fast path')

const variants = {
  isCanonicalUcanBlock: (d) => isCanonicalUcanBlock(d.root.bytes),
  'UCAN.encode + compare': (d) => Buffer.from(UCAN.encode(d.data)).equals(d.root.bytes),
  'UCAN.write (encode + sha256)': async (d) => (await UCAN.write(d.data)).cid.equals(d.cid),
}

/** CPU µs per call of `f` on `d`. */
async function measure(f, d) {
  for (let i = 0; i < 1000; i++) await f(d) // warm up
  const before = cpuUsage()
  for (let i = 0; i < ITERATIONS; i++) await f(d)
  const used = cpuUsage(before)
  return (used.user + used.system) / ITERATIONS
}

const results = {}
for (let rep = 0; rep < REPS; rep++) {
  for (const [blockName, d] of Object.entries(blocks)) {
    for (const [name, f] of Object.entries(variants)) {
      const key = `${blockName} (${d.root.bytes.length} B) · ${name}`
      ;(results[key] ??= []).push(await measure(f, d))
    }
  }
}

const fmt = (x) => x.toFixed(2).padStart(8)
console.log(`CPU µs per block, ${ITERATIONS} calls × ${REPS} repetitions: min / median / max`)
for (const [key, xs] of Object.entries(results)) {
  const s = [...xs].sort((a, b) => a - b)
  console.log(`${key.padEnd(64)} ${fmt(s[0])} ${fmt(s[Math.floor(s.length / 2)])} ${fmt(s[s.length - 1])}`)
}
