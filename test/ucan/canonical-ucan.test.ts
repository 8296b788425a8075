/**
 * canonical-ucan.ts: `isCanonicalUcanBlock(b)` true ⇒ dag-ucan re-encodes what `b` decodes to
 * into exactly `b`; every UCAN ucanto and ucanlog's client make answers true (the fast path is
 * taken); each hand-made non-canonical rewrite answers false and is still refused by
 * `checkContentAddressed` (the re-encoding, the authority).
 */
import { beforeAll, describe, expect, test } from 'vitest'
import fc from 'fast-check'
import { Delegation, UCAN, delegate, invoke } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { Absentee, ed25519 } from '@ucanto/principal'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import { CID } from 'multiformats/cid'
import * as Link from 'multiformats/link'
import { MAX_DEPTH, isCanonicalUcanBlock } from '../../src/ucan/canonical-ucan.js'
import { checkContentAddressed } from '../../src/ucan/delegation.js'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, readInvocation, revokeInvocation } from '../../src/ucan/client.js'
import { type Principals, now, principals } from './helpers.js'

// ---------------------------------------------------------------------------------------------
// A small CBOR tree that keeps how each item was written, to hand-make non-canonical encodings.

type Node =
  | { t: 'uint' | 'neg'; v: bigint; size?: number }
  | { t: 'bytes' | 'text'; v: Uint8Array; size?: number; indef?: boolean }
  | { t: 'array'; items: Node[]; size?: number; indef?: boolean }
  | { t: 'map'; entries: [Node, Node][]; size?: number; indef?: boolean }
  | { t: 'tag'; tag: bigint; item: Node; size?: number }
  | { t: 'simple'; v: number }
  | { t: 'float'; v: number; width: 2 | 4 | 8 }

/** Parses well-formed definite-length CBOR (what ucanto writes) into a {@link Node}. */
function parse(bytes: Uint8Array): Node {
  let pos = 0
  // Bounds checked everywhere: a mutated block may claim more than it holds (a length of 2^40).
  const need = (n: bigint | number): void => {
    if (BigInt(pos) + BigInt(n) > BigInt(bytes.length)) throw new Error('test parser: truncated')
  }
  const arg = (minor: number): bigint => {
    if (minor < 24) return BigInt(minor)
    if (minor > 27) throw new Error('test parser: reserved or indefinite head')
    const n = 1 << (minor - 24)
    need(n)
    let v = 0n
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(bytes[pos++] as number)
    return v
  }
  const item = (): Node => {
    need(1)
    const b = bytes[pos++] as number
    const major = b >> 5
    const minor = b & 31
    if (major === 7) {
      if (minor < 24) return { t: 'simple', v: minor }
      throw new Error('test parser: float or simple > 23 not expected in ucanto output')
    }
    const v = arg(minor)
    switch (major) {
      case 0:
        return { t: 'uint', v }
      case 1:
        return { t: 'neg', v }
      case 2:
      case 3: {
        need(v)
        const out = bytes.slice(pos, pos + Number(v))
        pos += Number(v)
        return { t: major === 2 ? 'bytes' : 'text', v: out }
      }
      case 4:
        need(v) // each item is at least one byte
        return { t: 'array', items: Array.from({ length: Number(v) }, () => item()) }
      case 5:
        need(2n * v)
        return { t: 'map', entries: Array.from({ length: Number(v) }, () => [item(), item()] as [Node, Node]) }
      default:
        return { t: 'tag', tag: v, item: item() }
    }
  }
  const n = item()
  if (pos !== bytes.length) throw new Error('test parser: trailing bytes')
  return n
}

/** Writes `node`, with each head in its `size` (bytes after the initial byte: 0, 1, 2, 4, 8) if set, else the shortest. */
function write(node: Node): Uint8Array {
  const out: number[] = []
  const head = (major: number, v: bigint, size?: number) => {
    const s = size ?? (v < 24n ? 0 : v < 0x100n ? 1 : v < 0x10000n ? 2 : v < 0x100000000n ? 4 : 8)
    if (s === 0) return out.push((major << 5) | Number(v))
    out.push((major << 5) | (24 + Math.log2(s)))
    for (let i = s - 1; i >= 0; i--) out.push(Number((v >> BigInt(8 * i)) & 0xffn))
  }
  const go = (n: Node): void => {
    switch (n.t) {
      case 'uint':
        return void head(0, n.v, n.size)
      case 'neg':
        return void head(1, n.v, n.size)
      case 'bytes':
      case 'text': {
        const major = n.t === 'bytes' ? 2 : 3
        if (n.indef) {
          out.push((major << 5) | 31)
          head(major, BigInt(n.v.length))
          out.push(...n.v, 0xff)
        } else {
          head(major, BigInt(n.v.length), n.size)
          out.push(...n.v)
        }
        return
      }
      case 'array':
        if (n.indef) out.push(0x9f)
        else head(4, BigInt(n.items.length), n.size)
        n.items.forEach(go)
        if (n.indef) out.push(0xff)
        return
      case 'map':
        if (n.indef) out.push(0xbf)
        else head(5, BigInt(n.entries.length), n.size)
        for (const [k, v] of n.entries) {
          go(k)
          go(v)
        }
        if (n.indef) out.push(0xff)
        return
      case 'tag':
        head(6, n.tag, n.size)
        return go(n.item)
      case 'simple':
        return void out.push(0xe0 | n.v)
      case 'float': {
        const dv = new DataView(new ArrayBuffer(n.width))
        if (n.width === 2) dv.setUint16(0, float16(n.v))
        else if (n.width === 4) dv.setFloat32(0, n.v)
        else dv.setFloat64(0, n.v)
        out.push(0xf8 + Math.log2(n.width), ...new Uint8Array(dv.buffer))
        return
      }
    }
  }
  go(node)
  return new Uint8Array(out)
}

/** Half-precision bits of a small integer-valued float (enough for the rewrites here). */
function float16(v: number): number {
  if (v === 0) return 0
  const sign = v < 0 ? 0x8000 : 0
  const a = Math.abs(v)
  const e = Math.floor(Math.log2(a))
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024)
}

/** A byte or text string node. */
type Str = { t: 'bytes' | 'text'; v: Uint8Array; size?: number; indef?: boolean }

const utf8 = new TextEncoder()
const text = (s: string): Node => ({ t: 'text', v: utf8.encode(s) })
const keyOf = (n: Node): string => (n.t === 'text' ? new TextDecoder().decode(n.v) : '?')
const entry = (m: Node, k: string): [Node, Node] | undefined => (m.t === 'map' ? m.entries.find(([kk]) => keyOf(kk) === k) : undefined)
const clone = (n: Node): Node => parse(write(n))
const int = (v: number): Node => (v >= 0 ? { t: 'uint', v: BigInt(v) } : { t: 'neg', v: BigInt(-1 - v) })

/** Inserts `[k, v]` in a map at its canonical place (length-first, then bytewise). */
function insertSorted(m: Node, k: string, v: Node): Node {
  if (m.t !== 'map') throw new Error('not a map')
  const entries = [...m.entries, [text(k), v] as [Node, Node]]
  entries.sort(([a], [b]) => {
    const x = (a as { v: Uint8Array }).v
    const y = (b as { v: Uint8Array }).v
    return x.length - y.length || Buffer.compare(x, y)
  })
  return { ...m, entries }
}

/** Every node of a tree, depth first, with a setter to replace it in place. */
function slots(root: Node): { node: Node; set: (n: Node) => void }[] {
  const out: { node: Node; set: (n: Node) => void }[] = []
  const visit = (n: Node, set: (n: Node) => void) => {
    out.push({ node: n, set })
    if (n.t === 'array') n.items.forEach((c, i) => visit(c, (x) => (n.items[i] = x)))
    else if (n.t === 'map')
      n.entries.forEach((e) => {
        visit(e[0], (x) => (e[0] = x))
        visit(e[1], (x) => (e[1] = x))
      })
    else if (n.t === 'tag') visit(n.item, (x) => (n.item = x))
  }
  visit(root, () => {})
  return out
}

// ---------------------------------------------------------------------------------------------
// The named non-canonical rewrites of a UCAN block (each answers the rewritten bytes, or
// undefined when it does not apply to this block).

type Rewrite = (ucan: Node) => Node | undefined

const top = (u: Node, f: (m: Extract<Node, { t: 'map' }>) => void): Node => {
  const c = clone(u) as Extract<Node, { t: 'map' }>
  f(c)
  return c
}

/** `u` with `nnc` set to the raw (possibly ill-formed UTF-8) text bytes `raw`. */
const withNnc = (u: Node, raw: number[]): Node =>
  top(u, (m) => {
    const rest = { ...m, entries: m.entries.filter(([k]) => keyOf(k) !== 'nnc') }
    Object.assign(m, insertSorted(rest, 'nnc', { t: 'text', v: new Uint8Array(raw) }))
  })

/** `u` with `[k, v]` added (in canonical order) to its first capability. */
const inCapability = (u: Node, k: string, v: Node): Node =>
  top(u, (m) => {
    const att = (entry(m, 'att') as [Node, Node])[1] as Extract<Node, { t: 'array' }>
    att.items[0] = insertSorted(att.items[0] as Node, k, v)
  })

/** Each rewrite keeps the block decodable or not; none keeps it canonical. */
const REWRITES: Record<string, Rewrite> = {
  'top-level keys swapped': (u) => top(u, (m) => void ([m.entries[0], m.entries[1]] = [m.entries[1], m.entries[0]])),
  'capability keys swapped': (u) =>
    top(u, (m) => {
      const cap = (entry(m, 'att')?.[1] as Extract<Node, { t: 'array' }>).items[0] as Extract<Node, { t: 'map' }>
      const n = cap.entries.length
      ;[cap.entries[n - 2], cap.entries[n - 1]] = [cap.entries[n - 1], cap.entries[n - 2]]
    }),
  'non-minimal map head': (u) => top(u, (m) => void (m.size = 1)),
  'non-minimal integer head (exp)': (u) => {
    const e = entry(u, 'exp')?.[1]
    if (e?.t !== 'uint') return undefined
    return top(u, (m) => void ((entry(m, 'exp') as [Node, Node])[1] = { ...e, size: 8 }))
  },
  'non-minimal string length (key)': (u) => top(u, (m) => void (m.entries[0][0] = { ...(m.entries[0][0] as Str), size: 1 })),
  'non-minimal bytes length (s)': (u) => top(u, (m) => void ((entry(m, 's') as [Node, Node])[1] = { ...(entry(m, 's')?.[1] as Str), size: 2 })),
  'float64 for the integer exp': (u) => {
    const e = entry(u, 'exp')?.[1]
    if (e?.t !== 'uint') return undefined
    return top(u, (m) => void ((entry(m, 'exp') as [Node, Node])[1] = { t: 'float', v: Number(e.v), width: 8 }))
  },
  'float16 for an integer nbf': (u) => top(u, (m) => Object.assign(m, insertSorted(m, 'nbf', { t: 'float', v: 1, width: 2 }))),
  'indefinite-length map': (u) => top(u, (m) => void (m.indef = true)),
  'indefinite-length att array': (u) => top(u, (m) => void ((entry(m, 'att') as [Node, Node])[1] = { ...(entry(m, 'att')?.[1] as Extract<Node, { t: 'array' }>), indef: true })),
  'indefinite-length string (v)': (u) => top(u, (m) => void ((entry(m, 'v') as [Node, Node])[1] = { ...(entry(m, 'v')?.[1] as Str), indef: true })),
  'extra top-level key': (u) => top(u, (m) => Object.assign(m, insertSorted(m, 'zzz', int(1)))),
  'nbf: 0': (u) => (entry(u, 'nbf') ? undefined : top(u, (m) => Object.assign(m, insertSorted(m, 'nbf', int(0))))),
  'empty fct': (u) => (entry(u, 'fct') ? undefined : top(u, (m) => Object.assign(m, insertSorted(m, 'fct', { t: 'array', items: [] })))),
  'nnc: null': (u) => (entry(u, 'nnc') ? undefined : top(u, (m) => Object.assign(m, insertSorted(m, 'nnc', { t: 'simple', v: 22 })))),
  'missing prf': (u) => top(u, (m) => void (m.entries = m.entries.filter(([k]) => keyOf(k) !== 'prf'))),
  'missing exp': (u) => top(u, (m) => void (m.entries = m.entries.filter(([k]) => keyOf(k) !== 'exp'))),
  'uppercase can': (u) =>
    top(u, (m) => {
      const cap = (entry(m, 'att')?.[1] as Extract<Node, { t: 'array' }>).items[0] as Extract<Node, { t: 'map' }>
      const can = entry(cap, 'can') as [Node, Node]
      can[1] = text(keyOf(can[1]).toUpperCase())
    }),
  'non-minimal varint in s': (u) =>
    top(u, (m) => {
      const s = entry(m, 's') as [Node, Node]
      const b = (s[1] as Str).v // 0xed 0xa1 0x03 (EdDSA), size, raw
      s[1] = { t: 'bytes', v: new Uint8Array([b[0], b[1], b[2] | 0x80, 0x00, ...b.subarray(3)]) }
    }),
  'non-minimal varint in iss': (u) =>
    top(u, (m) => {
      const iss = entry(m, 'iss') as [Node, Node]
      const b = (iss[1] as Str).v // 0xed 0x01 + key, or 0x9d 0x1a + method
      iss[1] = { t: 'bytes', v: new Uint8Array([b[0], b[1] | 0x80, 0x00, ...b.subarray(2)]) }
    }),
  'non-standard signature with an ill-formed name': (u) =>
    top(u, (m) => {
      const s = entry(m, 's') as [Node, Node]
      s[1] = { t: 'bytes', v: new Uint8Array([0x80, 0xa0, 0x03, 0x00, 0xff]) } // 0xd000, size 0, name 0xff
    }),
  'signature with a trailing byte': (u) =>
    top(u, (m) => {
      const s = entry(m, 's') as [Node, Node]
      s[1] = { t: 'bytes', v: new Uint8Array([...(s[1] as Str).v, 0x00]) }
    }),
  'undefined for exp': (u) => top(u, (m) => void ((entry(m, 'exp') as [Node, Node])[1] = { t: 'simple', v: 23 })),
  'duplicate key': (u) => top(u, (m) => void m.entries.splice(1, 0, m.entries[0])),
  'invalid UTF-8 in can': (u) =>
    top(u, (m) => {
      const cap = (entry(m, 'att')?.[1] as Extract<Node, { t: 'array' }>).items[0] as Extract<Node, { t: 'map' }>
      const can = entry(cap, 'can') as [Node, Node]
      can[1] = { t: 'text', v: new Uint8Array([...(can[1] as { v: Uint8Array }).v, 0xc3]) }
    }),
  'BOM before nnc': (u) => top(u, (m) => Object.assign(m, insertSorted(m.entries.some(([k]) => keyOf(k) === 'nnc') ? { ...m, entries: m.entries.filter(([k]) => keyOf(k) !== 'nnc') } : m, 'nnc', text('\ufeffnonce')))),
  'overlong UTF-8 in nnc': (u) => withNnc(u, [0x6e, 0xe0, 0x80, 0xaf]), // '/' in three bytes
  'UTF-16 surrogate in nnc': (u) => withNnc(u, [0x6e, 0xed, 0xa0, 0x80]), // U+D800
  'code point past U+10FFFF in nnc': (u) => withNnc(u, [0x6e, 0xf4, 0x90, 0x80, 0x80]),
  'lead byte 0xF5 in nnc': (u) => withNnc(u, [0x6e, 0xf5, 0x80, 0x80, 0x80]),
  'undefined in a capability': (u) => inCapability(u, 'zz', { t: 'simple', v: 23 }),
  'integral float in a capability': (u) => inCapability(u, 'zz', { t: 'float', v: 2, width: 8 }),
  'float32 in a capability': (u) => inCapability(u, 'zz', { t: 'float', v: 0.5, width: 4 }),
  'simple value 16 in a capability': (u) => inCapability(u, 'zz', { t: 'simple', v: 16 }),
  'CID prefixed 0x01, not 0x00, in a capability': (u) => inCapability(u, 'zz', { t: 'tag', tag: 42n, item: { t: 'bytes', v: new Uint8Array([0x01, 0x01, 0x71, 0x12, 0x20, ...new Uint8Array(32)]) } }),
  'big integer exp (2^53)': (u) => top(u, (m) => void ((entry(m, 'exp') as [Node, Node])[1] = { t: 'uint', v: 2n ** 53n })),
  'tag other than 42 over a proof': (u) => top(u, (m) => void ((entry(m, 'prf') as [Node, Node])[1] = { t: 'array', items: [{ t: 'tag', tag: 43n, item: { t: 'bytes', v: new Uint8Array(37) } }] })),
  'CID with a non-minimal varint': (u) =>
    top(u, (m) => {
      const digest = new Uint8Array(32).fill(7)
      const cid = new Uint8Array([0x00, 0x01, 0xf1, 0x00, 0x12, 0x20, ...digest]) // codec 0x71 as 2 bytes
      ;(entry(m, 'prf') as [Node, Node])[1] = { t: 'array', items: [{ t: 'tag', tag: 42n, item: { t: 'bytes', v: cid } }] }
    }),
  '__proto__ key in a capability': (u) =>
    top(u, (m) => {
      const att = entry(m, 'att') as [Node, Node]
      const cap = (att[1] as Extract<Node, { t: 'array' }>).items[0]
      ;(att[1] as Extract<Node, { t: 'array' }>).items[0] = insertSorted(cap, '__proto__', { t: 'map', entries: [] })
    }),
  'v not N.N.N': (u) => top(u, (m) => void ((entry(m, 'v') as [Node, Node])[1] = int(1))),
  'trailing byte': (u) => ({ t: 'array', items: [u] }), // replaced below by the UCAN followed by 0x00
}

/** Applies rewrite `name` to the block `bytes` (undefined when it does not apply). */
function rewrite(name: string, bytes: Uint8Array): Uint8Array | undefined {
  if (name === 'trailing byte') return new Uint8Array([...bytes, 0x00])
  const n = REWRITES[name]?.(parse(bytes))
  return n === undefined ? undefined : write(n)
}

// ---------------------------------------------------------------------------------------------

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** Whether dag-ucan re-encodes what `b` decodes to into exactly `b` (false when it does not decode as dag-cbor). */
function reencodesIdentically(b: Uint8Array): boolean {
  let data: ReturnType<typeof UCAN.decode>
  try {
    data = UCAN.decode(b as never)
  } catch {
    return false
  }
  if ((data as { jwt?: unknown }).jwt !== undefined) return false
  try {
    return bytesEqual(UCAN.encode(data), b)
  } catch {
    return false
  }
}

/** A Delegation whose root is `bytes` under their own sha2-256 dag-cbor CID. */
async function blockOf(bytes: Uint8Array): Promise<API.Delegation> {
  const cid = Link.create(0x71, await sha256.digest(bytes))
  return Delegation.create({ root: { cid, bytes } as never, blocks: new Map() })
}

let P: Principals
let keys: ed25519.EdSigner[]
let webService: API.Signer

beforeAll(async () => {
  P = await principals()
  keys = [P.space, P.agent, P.alice, P.service]
  webService = P.service.withDID('did:web:ucanlog.example')
})

const linkArb = fc
  .tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.constantFrom(0x71, 0x55, 0x70, 0x0202), fc.boolean(), fc.boolean())
  .map(([seed, code, v0, id]) => {
    const digest = new Uint8Array(32).fill(seed[0] ?? 0)
    digest.set(seed)
    if (v0) return CID.createV0({ code: 0x12, size: 32, digest, bytes: new Uint8Array([0x12, 0x20, ...digest]) } as never)
    if (id) return Link.create(code, identity.digest(seed))
    return Link.create(code, { code: 0x12, size: 32, digest, bytes: new Uint8Array([0x12, 0x20, ...digest]) } as never)
  })
const keyArb = fc.string({ unit: 'binary', maxLength: 6 }).filter((k) => k !== '__proto__' && k !== '/')
const leafArb = fc.oneof(
  fc.integer(),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.maxSafeInteger(),
  fc.constantFrom(2 ** 32, 2 ** 32 - 1, -(2 ** 32), -(2 ** 32) - 1, 23, 24, 255, 256, 65535, 65536, -24, -25, 0, -1),
  fc.boolean(),
  fc.constant(null),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.uint8Array({ maxLength: 40 }),
  linkArb,
)
const { ipld: ipldArb } = fc.letrec<{ ipld: unknown }>((tie) => ({
  ipld: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    leafArb,
    fc.array(tie('ipld'), { maxLength: 4 }),
    fc.dictionary(keyArb, tie('ipld'), { maxKeys: 4, noNullPrototype: true }),
  ),
}))
const segment = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,8}$/)
const canArb = fc.oneof(fc.constant('*'), fc.tuple(segment, segment).map(([a, b]) => `${a}/${b}`), fc.tuple(segment, segment, segment).map(([a, b, c]) => `${a}/${b}/${c}`))

/** A random UCAN made by ucanto: a delegation or an invocation, with random capabilities, caveats, facts, bounds and proofs. */
const ucanArb = fc.record({
  invocation: fc.boolean(),
  issuer: fc.nat(3),
  web: fc.boolean(),
  caps: fc.array(
    fc.record({
      can: canArb,
      withIndex: fc.nat(5),
      nb: fc.option(fc.dictionary(keyArb.filter((k) => k !== 'can' && k !== 'with'), ipldArb, { maxKeys: 4, noNullPrototype: true }), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  exp: fc.option(fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(Infinity)), { nil: undefined }),
  nbf: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
  nonce: fc.option(fc.string({ unit: 'binary', maxLength: 16 }), { nil: undefined }),
  facts: fc.option(fc.array(fc.dictionary(keyArb, ipldArb, { maxKeys: 3, noNullPrototype: true }), { maxLength: 2 }), { nil: undefined }),
  proofs: fc.array(linkArb, { maxLength: 3 }),
})

async function makeUcan(r: typeof ucanArb extends fc.Arbitrary<infer T> ? T : never): Promise<Uint8Array> {
  const issuer = keys[r.issuer] as ed25519.EdSigner
  const audience = r.web ? webService : (keys[(r.issuer + 1) % keys.length] as ed25519.EdSigner)
  const withs = [issuer.did(), P.space.did(), 'did:web:ucanlog.example', 'https://example.com/a?b#c', 'mailto:a@example.com', 'ucan:*']
  const capabilities = r.caps.map((c) => ({ can: c.can, with: withs[c.withIndex], ...(c.nb !== undefined && { nb: c.nb }) })) as unknown as API.Capabilities
  const common = {
    issuer,
    audience,
    ...(r.exp !== undefined && { expiration: r.exp }),
    ...(r.nbf !== undefined && { notBefore: r.nbf }),
    ...(r.nonce !== undefined && { nonce: r.nonce }),
    ...(r.facts !== undefined && { facts: r.facts as API.Fact[] }),
    proofs: r.proofs as never,
  }
  if (r.invocation) {
    const [capability] = capabilities as unknown as [API.Capability]
    const inv = await invoke({ ...common, capability }).delegate()
    return inv.root.bytes
  }
  const d = await delegate({ ...common, capabilities } as never)
  return d.root.bytes
}

const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('rewrite' as const), name: fc.constantFrom(...Object.keys(REWRITES)) }),
  fc.record({ kind: fc.constant('head' as const), at: fc.nat() }),
  // The first capability's `with` or `can` replaced: URL-ish and ability-ish strings, any case and script.
  fc.record({
    kind: fc.constantFrom('with' as const, 'can' as const),
    text: fc.oneof(
      fc.string({ unit: 'binary', maxLength: 12 }),
      fc
        .tuple(
          fc.constantFrom('did:', 'http:', 'HTTPS:', 'file:', 'File:', 'a+b.c-d:', 'ws:', 'x:', 'x://', 'x:/', '1a:', ':', 'mailto:', 'ucan:', 'ftp:/'),
          fc.string({ unit: fc.constantFrom('a', '[', ']', ' ', '@', ':', '%', '#', '/', '?', '\t', '1'), maxLength: 8 }),
        )
        .map(([a, b]) => a + b),
      fc.tuple(fc.string({ maxLength: 4 }), fc.constantFrom('/', '*', 'İ', 'I', 'ß', 'Σ'), fc.string({ maxLength: 4 })).map(([a, b, c]) => a + b + c),
    ),
  }),
)

/** Applies a random mutation; undefined when it does not apply (or changes nothing). */
type Mutation = typeof mutationArb extends fc.Arbitrary<infer T> ? T : never

function mutate(bytes: Uint8Array, m: Mutation): Uint8Array | undefined {
  switch (m.kind) {
    case 'flip': {
      const out = bytes.slice()
      out[m.at % out.length] = m.byte
      return bytesEqual(out, bytes) ? undefined : out
    }
    case 'truncate':
      return bytes.slice(0, m.at % bytes.length)
    case 'rewrite':
      return rewrite(m.name, bytes)
    case 'with':
    case 'can': {
      const tree = parse(bytes)
      const att = entry(tree, 'att')?.[1]
      const cap = att?.t === 'array' ? att.items[0] : undefined
      const e = cap === undefined ? undefined : entry(cap, m.kind)
      if (e === undefined) return undefined
      e[1] = text(m.text)
      return write(tree)
    }
    case 'head': {
      // A random item written with a longer head than needed (or a float for an integer).
      const tree = parse(bytes)
      const all = slots(tree)
      const { node, set } = all[m.at % all.length] as (typeof all)[number]
      if (node.t === 'uint' || node.t === 'neg') set(m.at % 3 === 0 ? { t: 'float', v: node.t === 'uint' ? Number(node.v) : -1 - Number(node.v), width: 8 } : { ...node, size: 8 })
      else if (node.t === 'simple' || node.t === 'float') return undefined
      else set({ ...node, size: 4 } as Node)
      return write(tree)
    }
  }
}

/** {@link mutate}, or undefined when the structured ones meet bytes an earlier mutation made unparsable. */
function tryMutate(bytes: Uint8Array, m: Mutation): Uint8Array | undefined {
  try {
    return mutate(bytes, m)
  } catch {
    return undefined
  }
}

/** The bytes of a hex string, as a plain Uint8Array (a Buffer's `slice` is a view, which `mutate` must not be given). */
const hexBytes = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'))

describe('isCanonicalUcanBlock', () => {
  test('every UCAN ucanlog’s client makes is taken as canonical (the fast path is taken) and is', async () => {
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: webService, proofs: [spaceToAgent] })
    const made = [
      spaceToAgent,
      agentToService,
      await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 60 }),
      await (await appendInvocation({ agent: P.agent, service: webService, space: P.space.did(), entry: new Uint8Array([1, 2, 3]), agentToService })).delegate(),
      await readInvocation({ issuer: P.alice, service: P.service, space: P.space.did(), offset: 5, limit: 10 }).delegate(),
      await revokeInvocation({ issuer: P.space, service: webService, ucan: agentToService }).delegate(),
    ]
    // Storacha's email login: a did:mailto account's UCAN carries a non-standard (Absentee) signature.
    const account = Absentee.from({ id: 'did:mailto:example.com:alice' })
    made.push(await delegate({ issuer: account, audience: P.agent, capabilities: [{ can: '*', with: 'ucan:*' }] as never, proofs: [spaceToAgent], expiration: now() + 3600 }))
    for (const d of made) {
      expect(isCanonicalUcanBlock(d.root.bytes)).toBe(true)
      expect(reencodesIdentically(d.root.bytes)).toBe(true)
    }
  })

  test('property: every random ucanto UCAN answers true, and re-encodes identically', async () => {
    await fc.assert(
      fc.asyncProperty(ucanArb, async (r) => {
        const b = await makeUcan(r)
        expect(reencodesIdentically(b)).toBe(true)
        expect(isCanonicalUcanBlock(b)).toBe(true)
      }),
      { numRuns: 600, seed: 0x11c0de },
    )
  })

  test("the mutations' own CBOR parser refuses what a flip made unparsable, at once (a found case: a flipped head declaring 2^40 array items)", () => {
    // A UCAN whose default `exp` (a time) made these bytes; a flip turned a head into an array of
    // ~2^40 items, which the parser once tried to build past the end of the bytes until the heap ran out.
    const made = hexBytes(
      'a961735844eda103404c5cc16c0c3ec631d204d72442c73bf067da2ab34276bee4f49a109a18ec228d670db490c52c57' +
      '73ba09a00c091af29789858a0930b15973b6a453f0d7938700617665302e392e316361747481a3626e62a06363616e61' +
      '2a6477697468781968747470733a2f2f6578616d706c652e636f6d2f613f622363636175645822ed01ed4928c628d1c2' +
      'c6eae90338905995612959273a5c63f93636c14614ac8737d1636578701a6b0e76c8636973735822ed01ca93ac170518' +
      '7071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c636e62661b000000fffffffff0636e6e637828f28db0' +
      'aff3be9e8bf2ab96a9f38ca1a6f29fb5a6f19db2a8f382a09df191abb9f283b5bcf385b4876370726682d82a58230012' +
      '202cb407d36f30442c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2cd82a4800017100036d3031',
    )
    const flipped = tryMutate(made, { kind: 'flip', at: 1447635869, byte: 174 })
    expect(flipped).toBeDefined()
    expect(tryMutate(flipped as Uint8Array, { kind: 'head', at: 1865372726 })).toBeUndefined()
    // Every truncation of a valid block is refused by the parser too, never read past its end.
    for (let n = 0; n < made.length; n++) expect(() => parse(made.subarray(0, n))).toThrow(/test parser/)
  })

  test('property: true only when dag-ucan re-encodes identically, over random mutations of random UCANs', async () => {
    let mutants = 0
    let taken = 0
    await fc.assert(
      fc.asyncProperty(ucanArb, fc.array(mutationArb, { minLength: 1, maxLength: 2 }), async (r, ms) => {
        let b: Uint8Array | undefined = await makeUcan(r)
        for (const m of ms) if (b !== undefined && b.length > 0) b = tryMutate(b, m)
        if (b === undefined) return
        mutants++
        if (isCanonicalUcanBlock(b)) {
          taken++
          expect(reencodesIdentically(b)).toBe(true)
        }
      }),
      { numRuns: 1800, seed: 0x5ca9 },
    )
    // Some mutations keep the block canonical (a flipped signature or key byte, a truncation at
    // nothing): the implication was exercised on both sides.
    expect(mutants).toBeGreaterThan(1500)
    expect(taken).toBeGreaterThan(0)
  })

  test('not a UCAN: empty, an empty map, null', () => {
    expect(isCanonicalUcanBlock(new Uint8Array(0))).toBe(false)
    expect(isCanonicalUcanBlock(new Uint8Array([0xa0]))).toBe(false)
    expect(isCanonicalUcanBlock(new Uint8Array([0xf6]))).toBe(false)
  })

  test('nesting: a caveat nested to exactly MAX_DEPTH is taken, one level deeper is left to the re-encoding', async () => {
    // The UCAN map is depth 1, att 2, the capability 3, nb 4: k arrays inside nb reach 4 + k.
    for (const [k, taken] of [[MAX_DEPTH - 4, true], [MAX_DEPTH - 3, false]] as const) {
      let deep: unknown = 1
      for (let i = 0; i < k; i++) deep = [deep]
      const d = await delegate({ issuer: P.agent, audience: P.service, capabilities: [{ can: 'store/add', with: P.space.did(), nb: { deep } }] as never, expiration: now() + 600 })
      expect(reencodesIdentically(d.root.bytes)).toBe(true)
      expect(isCanonicalUcanBlock(d.root.bytes)).toBe(taken)
      expect(await checkContentAddressed(d, { proofs: false })).toBe(true)
    }
  })

  test('canonical UCANs it is not certain about (a float caveat, nesting past MAX_DEPTH): false, and checkContentAddressed re-encodes and accepts them', async () => {
    let deep: unknown = 'leaf'
    for (let i = 0; i < MAX_DEPTH + 2; i++) deep = [deep]
    for (const nb of [{ x: 0.5 }, { deep }, { n: -(2 ** 53) + 1, big: 2 ** 53 - 1 }]) {
      const d = await delegate({ issuer: P.agent, audience: P.service, capabilities: [{ can: 'store/add', with: P.space.did(), nb }] as never, expiration: now() + 600 })
      expect(reencodesIdentically(d.root.bytes)).toBe(true)
      expect(await checkContentAddressed(d, { proofs: false })).toBe(true)
      // Safe integers at the edges are taken; the float and the deep nesting are not.
      expect(isCanonicalUcanBlock(d.root.bytes)).toBe('n' in nb)
    }
  })
})

/**
 * Rewrites that dag-ucan alone re-encodes to the same bytes (it writes `s`, `iss` and `aud` back as
 * the bytes it read): a second block, hence a second CID, for the same signed UCAN. The signature
 * still verifies after a trailing byte in `s` (Ed25519 reads only the first `size` bytes), so
 * checkContentAddressed must refuse these itself (delegation.ts, canonical-ucan.ts
 * `isCanonicalSignature`/`isCanonicalPrincipal`).
 */
const DAG_UCAN_KEEPS = new Set(['non-minimal varint in s', 'non-minimal varint in iss', 'signature with a trailing byte', 'non-standard signature with an ill-formed name'])

describe('each hand-made non-canonical rewrite answers false and is still refused by checkContentAddressed', () => {
  const names = Object.keys(REWRITES)
  let base: API.Delegation[]
  beforeAll(async () => {
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const withNbf = await delegate({ issuer: P.agent, audience: P.service, capabilities: [{ can: 'store/add', with: P.space.did(), nb: { size: 5 } }], notBefore: 100, nonce: 'n', facts: [{ a: 1 }], proofs: [spaceToAgent], expiration: now() + 600 })
    base = [spaceToAgent, await delegateAgentToService({ agent: P.agent, service: webService, proofs: [spaceToAgent] }), withNbf]
  })
  for (const name of names) {
    test(name, async () => {
      let applied = 0
      for (const d of base) {
        expect(await checkContentAddressed(d, { proofs: false })).toBe(true)
        const b = rewrite(name, d.root.bytes)
        if (b === undefined) continue
        applied++
        expect(reencodesIdentically(b)).toBe(DAG_UCAN_KEEPS.has(name))
        expect(isCanonicalUcanBlock(b)).toBe(false)
        expect(await checkContentAddressed(await blockOf(b), { proofs: false })).toBe(false)
      }
      expect(applied).toBeGreaterThan(0)
    })
  }
})
