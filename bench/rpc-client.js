// The client half of bench/rpc.js: pre-signs N invocations, then sends them with C in flight.
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../dist/src/ucan/index.js'

const [url, did, n, c] = process.argv.slice(2)
const N = Number(n)
const space = await generateKey()
const agent = await generateKey()
const spaceToAgent = await delegateSpaceToAgent({ space, agent })
let t = performance.now()
const invs = []
for (let i = 0; i < N; i++) {
  invs.push(await appendInvocation({ agent, service: did, space: space.did(), entry: new TextEncoder().encode(`bench ${i}`), spaceToAgent }))
}
const signRate = N / ((performance.now() - t) / 1000)
const conn = connect(`${url}/rpc`, did)
const lat = []
let next = 0
t = performance.now()
await Promise.all(
  Array.from({ length: Number(c) }, async () => {
    while (next < N) {
      const inv = invs[next++]
      const t0 = performance.now()
      const [r] = await conn.execute(inv)
      if (!r.out.ok) throw new Error(JSON.stringify(r.out.error))
      lat.push(performance.now() - t0)
    }
  }),
)
const rate = N / ((performance.now() - t) / 1000)
lat.sort((a, b) => a - b)
process.send({ rate, signRate, p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)] })
