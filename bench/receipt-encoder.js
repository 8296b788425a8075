// The CPU of encoding an RPC response (issue 11, "lean responses"): request-check.ts
// `encodeResponse` (receipt-encoder.ts, each CBOR value encoded once) against
// `encodeResponseWithUcanto` (ucanto's Receipt.issue, Message.build, CAR encoder), side by side in
// one run, at 1 and 16 receipts per response. Each receipt carries a realistic AppendResult: a
// ~300-byte cosigned checkpoint note and a 17-hash inclusion proof; the service's native signer
// (principal.ts createFastSigner).
//
// Figures: process.cpuUsage() (user + system, every thread of the process) per receipt over
// BENCH_RE_RECEIPTS receipts (default 4,000), each repetition after a full GC, the two sides
// interleaved; min / median / max over BENCH_RE_REPS repetitions (default 5).
//
//   npm run build && node bench/receipt-encoder.js
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ed25519 } from '@ucanto/principal'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { createFastSigner } from '../dist/src/ucan/principal.js'
import { encodeResponse, encodeResponseWithUcanto } from '../dist/src/ucan/request-check.js'

const RECEIPTS = Number(process.env.BENCH_RE_RECEIPTS ?? 4000)
const REPS = Number(process.env.BENCH_RE_REPS ?? 5)

v8.setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')

const signer = createFastSigner(await ed25519.generate())
const space = (await ed25519.generate()).did()
const b64 = (n) => randomBytes(n).toString('base64')
const origin = `log.example/logs/${space}`
// c2sp.org/tlog-checkpoint: origin, size, root; the log's signature (key hash ‖ 64 bytes) and a witness cosignature (key hash ‖ time ‖ 64 bytes).
const checkpoint = `${origin}\n1234568\n${b64(32)}\n\n— log ${b64(68)}\n— w1 ${b64(76)}\n`
const result = (index) => ({ logId: space, origin, index, treeSize: 1234568, rootHash: b64(32), checkpoint, inclusionProof: Array.from({ length: 17 }, () => b64(32)), published: true })
const cid = () => CID.createV1(0x71, Digest.create(0x12, randomBytes(32))).toString()
const headers = { 'content-type': 'application/vnd.ipld.car', accept: 'application/vnd.ipld.car' }

/** `RECEIPTS / perResponse` responses' outcomes, each outcome its own invocation and index. */
const outcomesOf = (perResponse) => Array.from({ length: Math.ceil(RECEIPTS / perResponse) }, (_, r) => Array.from({ length: perResponse }, (_, i) => ({ cid: cid(), result: { ok: result(r * perResponse + i) } })))

/** CPU µs per receipt of `encode` over `responses`. */
async function measure(encode, responses) {
  gc()
  await new Promise((r) => setTimeout(r, 100))
  const c0 = process.cpuUsage()
  for (const outcomes of responses) await encode(outcomes, headers, signer)
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / (responses.length * responses[0].length)
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return [s[0], s[Math.floor(s.length / 2)], s[s.length - 1]].map((x) => x.toFixed(1).padStart(6)).join(' ')
}

console.log(`receipt-encoder: CPU µs per receipt (process.cpuUsage, user+system), ${RECEIPTS} receipts per repetition, ${REPS} repetitions; Node ${process.version}; checkpoint ${Buffer.byteLength(checkpoint)} bytes; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
const sides = [
  ['ucanto (encodeResponseWithUcanto)', encodeResponseWithUcanto],
  ['direct (encodeResponse)', encodeResponse],
]
for (const perResponse of [1, 16]) {
  const responses = outcomesOf(perResponse)
  // Same bytes, and JIT warm-up of both sides (discarded).
  for (const outcomes of responses.slice(0, 4)) {
    const [a, b] = await Promise.all(sides.map(([, encode]) => encode(outcomes, headers, signer)))
    if (!Buffer.from(a.body).equals(Buffer.from(b.body))) throw new Error('the two encoders disagree')
  }
  for (const [, encode] of sides) await measure(encode, responses.slice(0, Math.ceil(responses.length / 4)))
  const figures = sides.map(() => [])
  for (let r = 0; r < REPS; r++) for (let s = 0; s < sides.length; s++) figures[s].push(await measure(sides[s][1], responses))
  console.log(`\n${perResponse} receipt(s) per response                    min / median / max`)
  for (let s = 0; s < sides.length; s++) console.log(`  ${sides[s][0].padEnd(36)} ${stats(figures[s])} µs/receipt`)
}
console.log(`\nload average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
