// The explorer's verification core, run in the browser: RFC 6962 Merkle proofs built from the
// public c2sp.org/tlog-tiles files of a log and checked against its signed checkpoint, with
// SHA-256 and Ed25519 from WebCrypto (crypto.subtle; Ed25519 needs Chromium ≥ 113, Firefox ≥ 129,
// Safari ≥ 17). No dependency, no build step.
//
// It is a second, independent implementation of what src/tlog does on the server (src/tlog uses
// node:crypto and synchronous hashing, which a browser does not have): an auditor's page should
// not trust the code of the service it audits. test/browser/explorer.test.ts runs it against the
// real server.

const utf8 = new TextEncoder()
const TILE_WIDTH = 256
const TILE_HEIGHT = 8
/** Tiles kept per reader (each ≤ 8 KiB): a proof needs at most ~2 per level. */
const MAX_CACHED_TILES = 512
/** Largest file the page reads from a tile root (a full entry bundle of 256 × 64 KiB entries is ≤ 16.1 MiB). */
const MAX_FILE_BYTES = 17 << 20

/** A verification failure (malformed file, proof or note; wrong size or hash): the page shows `message` in red. */
export class VerificationError extends Error {
  constructor(message) {
    super(message)
    this.name = 'VerificationError'
  }
}

// ---- bytes ----

/** @returns {Promise<Uint8Array>} SHA-256 of `bytes`. */
export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
}

/** RFC 6962 §2.1 leaf hash: SHA-256(0x00 || entry). */
export async function leafHash(entry) {
  const b = new Uint8Array(entry.length + 1)
  b.set(entry, 1)
  return sha256(b)
}

/** RFC 6962 §2.1 interior node hash: SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  const b = new Uint8Array(65)
  b[0] = 1
  b.set(left, 1)
  b.set(right, 33)
  return sha256(b)
}

/** Whether two byte arrays are equal (constant time in their length). */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]
  return d === 0
}

/** Lowercase hex of `b`. */
export function toHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}

/** Standard padded base64 of `b`. */
export function toBase64(b) {
  let s = ''
  for (const x of b) s += String.fromCharCode(x)
  return btoa(s)
}

/** Strict standard base64 (padding required), as c2sp.org/signed-note writes it. */
export function fromBase64(s) {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) throw new VerificationError('malformed base64')
  const bin = atob(s)
  return Uint8Array.from(bin, (c) => c.charCodeAt(0))
}

// ---- c2sp.org/tlog-tiles paths ----

/** The path element of a tile or bundle index: 3-digit groups, all but the last prefixed `x`. */
export function indexPath(n) {
  let s = String(n % 1000).padStart(3, '0')
  n = Math.floor(n / 1000)
  while (n > 0) {
    s = `x${String(n % 1000).padStart(3, '0')}/${s}`
    n = Math.floor(n / 1000)
  }
  return s
}

/** `tile/<L>/<N>[.p/<W>]`, or `tile/entries/<N>[.p/<W>]` when level is 'entries'. */
export function tilePath(level, index, width) {
  return `tile/${level}/${indexPath(index)}${width < TILE_WIDTH ? `.p/${width}` : ''}`
}

/** Hashes (or entries, level 0) the tile at tile level `level`, index `index` holds in a tree of `size` entries (0: none). */
export function tileWidth(level, index, size) {
  const row = Math.floor(size / TILE_WIDTH ** level)
  return Math.max(0, Math.min(TILE_WIDTH, row - index * TILE_WIDTH))
}

/** Parses an entry bundle: each entry is a 2-byte big-endian length and that many bytes. */
export function parseEntryBundle(data) {
  const out = []
  let i = 0
  while (i < data.length) {
    if (i + 2 > data.length) throw new VerificationError('entry bundle truncated')
    const n = (data[i] << 8) | data[i + 1]
    if (i + 2 + n > data.length) throw new VerificationError('entry bundle truncated')
    out.push(data.subarray(i + 2, i + 2 + n))
    i += 2 + n
  }
  return out
}

/**
 * Reads a log's files from its tile root `base` (a URL ending in `/`: `<base>checkpoint`,
 * `<base>tile/…`), keeping up to MAX_CACHED_TILES hash tiles. `stats.fetched` counts requests.
 */
export class TileSource {
  constructor(base) {
    this.base = base
    this.tiles = new Map()
    this.stats = { fetched: 0 }
  }

  /** The bytes at `<base><path>` (at most MAX_FILE_BYTES); `fresh` bypasses the HTTP cache. Throws VerificationError on a non-2xx answer. */
  async get(path, { fresh = false } = {}) {
    this.stats.fetched++
    const res = await fetch(this.base + path, fresh ? { cache: 'no-store' } : {})
    if (!res.ok) throw new VerificationError(`${path}: HTTP ${res.status}`)
    const len = Number(res.headers.get('content-length') ?? 0)
    if (len > MAX_FILE_BYTES) throw new VerificationError(`${path}: larger than ${MAX_FILE_BYTES} bytes`)
    const b = new Uint8Array(await res.arrayBuffer())
    if (b.length > MAX_FILE_BYTES) throw new VerificationError(`${path}: larger than ${MAX_FILE_BYTES} bytes`)
    return b
  }

  /** The checkpoint note, never from the cache (it changes with every publication). */
  async checkpoint() {
    return new TextDecoder().decode(await this.get('checkpoint', { fresh: true }))
  }

  /** The hash tile (level, index) of a tree of `size`: 32-byte hashes; checks its length. */
  async tile(level, index, size) {
    const w = tileWidth(level, index, size)
    if (w === 0) throw new VerificationError(`tile ${level}/${index} is not in a tree of ${size}`)
    const path = tilePath(level, index, w)
    let t = this.tiles.get(path)
    if (!t) {
      t = await this.get(path)
      if (t.length !== w * 32) throw new VerificationError(`${path}: ${t.length} bytes, want ${w * 32}`)
      if (this.tiles.size >= MAX_CACHED_TILES) this.tiles.delete(this.tiles.keys().next().value)
      this.tiles.set(path, t)
    }
    return t
  }

  /** The entries of bundle `index` in a tree of `size`. */
  async bundle(index, size) {
    const w = tileWidth(0, index, size)
    if (w === 0) throw new VerificationError(`entry bundle ${index} is not in a tree of ${size}`)
    const entries = parseEntryBundle(await this.get(tilePath('entries', index, w)))
    if (entries.length !== w) throw new VerificationError(`entry bundle ${index}: ${entries.length} entries, want ${w}`)
    return entries
  }

  /** The leaf hash of entry `i` as the level-0 tile stores it. */
  async storedLeafHash(i, size) {
    const t = await this.tile(0, Math.floor(i / TILE_WIDTH), size)
    const at = (i % TILE_WIDTH) * 32
    return t.slice(at, at + 32)
  }

  /**
   * The stored hash of the complete subtree of 2^level leaves starting at leaf idx·2^level, read
   * from the tile of level ⌊level/8⌋ (and hashed up inside it when level % 8 ≠ 0).
   */
  async storedHash(level, idx, size) {
    const tl = Math.floor(level / TILE_HEIGHT)
    const span = 2 ** (level % TILE_HEIGHT)
    const first = idx * span
    const n = Math.floor(first / TILE_WIDTH)
    const t = await this.tile(tl, n, size)
    const at = first - n * TILE_WIDTH
    if ((at + span) * 32 > t.length) throw new VerificationError(`hash ${level}/${idx} is not in a tree of ${size}`)
    let row = []
    for (let k = 0; k < span; k++) row.push(t.slice((at + k) * 32, (at + k + 1) * 32))
    while (row.length > 1) {
      const up = []
      for (let k = 0; k < row.length; k += 2) up.push(await nodeHash(row[k], row[k + 1]))
      row = up
    }
    return row[0]
  }

  /** MTH(D[lo:hi]) (RFC 6962 §2.1) from the tiles of a tree of `size` ≥ hi; lo is aligned as RFC 6962's recursion leaves it. */
  async subtreeHash(lo, hi, size) {
    const n = hi - lo
    if (n <= 0) throw new VerificationError('empty subtree')
    const k = largestPow2AtMost(n)
    if (k === n && lo % n === 0) return this.storedHash(Math.log2(n), lo / n, size)
    const split = k === n ? k / 2 : k
    return nodeHash(await this.subtreeHash(lo, lo + split, size), await this.subtreeHash(lo + split, hi, size))
  }
}

function largestPow2AtMost(n) {
  let k = 1
  while (k * 2 <= n) k *= 2
  return k
}

/** The largest power of two < n (n ≥ 2), RFC 6962's split point. */
function split(n) {
  return largestPow2AtMost(n - 1)
}

// ---- RFC 9162 §2.1.3.2 / §2.1.4.2 verification walk: fn is the node's index, sn the last index, per level ----

function halve(pos) {
  pos.fn = Math.floor(pos.fn / 2)
  pos.sn = Math.floor(pos.sn / 2)
}

/**
 * Whether the next proof hash is the left sibling (fn odd, or fn the last node of its level);
 * when it is and fn is even, moves up until fn is odd or 0, as RFC 9162 says.
 */
function isLeftSibling(pos) {
  if (pos.fn % 2 === 0 && pos.fn !== pos.sn) return false
  while (pos.fn % 2 === 0 && pos.fn !== 0) halve(pos)
  return true
}

// ---- RFC 6962 §2.1.1 inclusion ----

/** PATH(m, D[lo:hi]) built from the tiles (leaf to root). */
export async function inclusionProof(src, index, size) {
  const path = []
  async function walk(lo, hi) {
    if (hi - lo === 1) return
    const k = split(hi - lo)
    if (index - lo < k) {
      await walk(lo, lo + k)
      path.push(await src.subtreeHash(lo + k, hi, size))
    } else {
      await walk(lo + k, hi)
      path.push(await src.subtreeHash(lo, lo + k, size))
    }
  }
  if (!(index >= 0 && index < size)) throw new VerificationError(`index ${index} is not in a tree of ${size}`)
  await walk(0, size)
  return path
}

/** The root hash that `path` proves for `leaf` at `index` of `size` (RFC 9162 §2.1.3.2). */
export async function rootFromInclusionProof(path, index, size, leaf) {
  const pos = { fn: index, sn: size - 1 }
  let r = leaf
  for (const p of path) {
    if (pos.sn === 0) throw new VerificationError('inclusion proof too long')
    if (isLeftSibling(pos)) r = await nodeHash(p, r)
    else r = await nodeHash(r, p)
    halve(pos)
  }
  if (pos.sn !== 0) throw new VerificationError('inclusion proof too short')
  return r
}

// ---- RFC 6962 §2.1.2 consistency ----

/** PROOF(m, D[n]) built from the tiles of a tree of n entries. */
export async function consistencyProof(src, m, n) {
  if (!(m >= 1 && m <= n)) throw new VerificationError(`sizes must satisfy 1 ≤ old ≤ new, got ${m} and ${n}`)
  const out = []
  async function sub(m, lo, hi, whole) {
    const size = hi - lo
    if (m === size) {
      if (!whole) out.push(await src.subtreeHash(lo, hi, n))
      return
    }
    const k = split(size)
    if (m <= k) {
      await sub(m, lo, lo + k, whole)
      out.push(await src.subtreeHash(lo + k, hi, n))
    } else {
      await sub(m - k, lo + k, hi, false)
      out.push(await src.subtreeHash(lo, lo + k, n))
    }
  }
  await sub(m, 0, n, true)
  return out
}

/** Throws VerificationError unless `proof` shows the tree (m, oldRoot) is a prefix of (n, newRoot) (RFC 9162 §2.1.4.2). */
export async function checkConsistency(proof, m, oldRoot, n, newRoot) {
  if (m === n) {
    if (proof.length !== 0 || !equalBytes(oldRoot, newRoot)) throw new VerificationError('same size, different roots')
    return
  }
  const p = largestPow2AtMost(m) === m ? [oldRoot, ...proof] : proof
  if (p.length === 0) throw new VerificationError('empty consistency proof')
  const pos = { fn: m - 1, sn: n - 1 }
  while (pos.fn % 2 === 1) halve(pos)
  let fr = p[0]
  let sr = p[0]
  for (const c of p.slice(1)) {
    if (pos.sn === 0) throw new VerificationError('consistency proof too long')
    if (isLeftSibling(pos)) {
      fr = await nodeHash(c, fr)
      sr = await nodeHash(c, sr)
    } else {
      sr = await nodeHash(sr, c)
    }
    halve(pos)
  }
  if (pos.sn !== 0) throw new VerificationError('consistency proof too short')
  if (!equalBytes(fr, oldRoot)) throw new VerificationError(`the proof does not lead to the root of size ${m}`)
  if (!equalBytes(sr, newRoot)) throw new VerificationError(`the proof does not lead to the root of size ${n}`)
}

// ---- c2sp.org/signed-note, tlog-checkpoint, tlog-cosignature ----

/** c2sp.org/signed-note signature types: Ed25519 note signature, and cosignature/v1 (c2sp.org/tlog-cosignature). */
export const SIG_ED25519 = 0x01
export const SIG_COSIGNATURE_V1 = 0x04

/** Parses a vkey `<name>+<hex8 key ID>+<base64(type || key)>`; checks the key ID (SHA-256(name || 0x0A || type || key)[:4]). */
export async function parseVkey(vkey) {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(vkey.trim())
  if (!m) throw new VerificationError('malformed vkey (want name+hex8+base64)')
  const [, name, hex, b64] = m
  const key = fromBase64(b64)
  if (key.length !== 33) throw new VerificationError('vkey: want a type byte and a 32-byte Ed25519 key')
  const id = await keyId(name, key)
  if (id !== parseInt(hex, 16)) throw new VerificationError(`vkey ${name}: key ID ${hex} does not match the key`)
  return { name, keyId: id, type: key[0], publicKey: key.slice(1), vkey: vkey.trim() }
}

async function keyId(name, typedKey) {
  const n = utf8.encode(name + '\n')
  const b = new Uint8Array(n.length + typedKey.length)
  b.set(n)
  b.set(typedKey, n.length)
  const h = await sha256(b)
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0
}

/** Splits a note into its text (ending in `\n`) and signature lines {name, keyId, sig}. */
export function parseNote(note) {
  const at = note.lastIndexOf('\n\n')
  if (at < 0 || !note.endsWith('\n')) throw new VerificationError('malformed note: no signature block')
  const text = note.slice(0, at + 1)
  const signatures = []
  for (const line of note.slice(at + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line)
    if (!m) throw new VerificationError('malformed note signature line')
    const raw = fromBase64(m[2])
    if (raw.length < 5) throw new VerificationError('note signature too short')
    signatures.push({ name: m[1], keyId: ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0, sig: raw.slice(4) })
  }
  return { text, signatures }
}

/** Parses checkpoint text: origin, decimal size, base64 root hash, extension lines. */
export function parseCheckpoint(text) {
  const lines = text.split('\n')
  if (lines.length < 4 || lines[lines.length - 1] !== '') throw new VerificationError('malformed checkpoint')
  const [origin, sizeText, rootText] = lines
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) throw new VerificationError('malformed checkpoint size')
  const root = fromBase64(rootText)
  if (root.length !== 32) throw new VerificationError('checkpoint root is not 32 bytes')
  return { origin, size: Number(sizeText), root, rootBase64: rootText, extensions: lines.slice(3, -1) }
}

async function ed25519Verify(publicKey, sig, msg) {
  const key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify'])
  return crypto.subtle.verify({ name: 'Ed25519' }, key, sig, msg)
}

/** Whether `signature` (a parseNote line) is the log key `k`'s (type 0x01) valid signature of `text`. */
export async function verifyLogSignature(k, text, signature) {
  if (signature.name !== k.name || signature.keyId !== k.keyId || signature.sig.length !== 64) return false
  return ed25519Verify(k.publicKey, signature.sig, utf8.encode(text))
}

/**
 * The cosignature/v1 (type 0x04) check of `signature` by witness key `k` over checkpoint `text`:
 * undefined when the line is not `k`'s, else {valid, time (Unix seconds)}.
 */
export async function verifyCosignature(k, text, signature) {
  if (signature.name !== k.name || signature.keyId !== k.keyId) return undefined
  if (signature.sig.length !== 72) return { valid: false, time: 0 }
  const view = new DataView(signature.sig.buffer, signature.sig.byteOffset, 8)
  const time = Number(view.getBigUint64(0))
  const msg = utf8.encode(`cosignature/v1\ntime ${time}\n${text}`)
  return { valid: await ed25519Verify(k.publicKey, signature.sig.slice(8), msg), time }
}

/**
 * Parses a c2sp.org/tlog-policy's witness, group and quorum lines (enough to evaluate it; the
 * server's parser, src/tlog/policy.ts, enforces the rest): {witnesses: [{name, vkey, url}],
 * satisfied(set of witness names)}.
 */
export function parsePolicy(text) {
  const witnesses = []
  const groups = new Map()
  let quorum = 'none'
  for (const line of text.split('\n')) {
    const f = line.trim().split(/[ \t]+/)
    if (f[0] === '' || f[0].startsWith('#')) continue
    if (f[0] === 'witness') witnesses.push({ name: f[1], vkey: f[2], url: f[3] })
    else if (f[0] === 'group') groups.set(f[1], { k: f[2], members: f.slice(3) })
    else if (f[0] === 'quorum') quorum = f[1]
  }
  const met = (name, ok) => {
    if (name === 'none') return true
    const g = groups.get(name)
    if (!g) return ok.has(name)
    const n = g.members.filter((m) => met(m, ok)).length
    const k = g.k === 'all' ? g.members.length : g.k === 'any' ? 1 : Number(g.k)
    return n >= k
  }
  return { witnesses, quorum, text, satisfied: (ok) => met(quorum, ok) }
}

/**
 * Verifies a checkpoint note: the log's Ed25519 signature by `logVkey`, every cosignature by a
 * policy witness, and the policy's quorum. Returns {checkpoint, text, logSignature: bool,
 * cosignatures: [{name, vkey, time, valid}], unknown: [names], quorum: bool}; never throws for a
 * bad signature (the caller shows each result), only for a malformed note or key.
 */
export async function verifyCheckpointNote(note, logVkey, policy) {
  const { text, signatures } = parseNote(note)
  const checkpoint = parseCheckpoint(text)
  const k = await parseVkey(logVkey)
  if (k.type !== SIG_ED25519) throw new VerificationError('the log vkey is not an Ed25519 (type 0x01) key')
  let logSignature = false
  const cosignatures = []
  const unknown = []
  const witnessKeys = []
  for (const w of policy?.witnesses ?? []) {
    try {
      witnessKeys.push({ w, k: await parseVkey(w.vkey) })
    } catch {
      // A policy witness whose vkey does not parse cosigns nothing.
    }
  }
  for (const s of signatures) {
    if (s.name === k.name && s.keyId === k.keyId) {
      logSignature = logSignature || (await verifyLogSignature(k, text, s))
      continue
    }
    let known = false
    for (const { w, k: wk } of witnessKeys) {
      const r = await verifyCosignature(wk, text, s)
      if (!r) continue
      known = true
      cosignatures.push({ name: w.name, keyName: wk.name, vkey: w.vkey, time: r.time, valid: r.valid })
    }
    if (!known) unknown.push(s.name)
  }
  const ok = new Set(cosignatures.filter((c) => c.valid).map((c) => c.name))
  return { checkpoint, text, logSignature, cosignatures, unknown, quorum: policy ? policy.satisfied(ok) : false, origin: checkpoint.origin === k.name }
}
