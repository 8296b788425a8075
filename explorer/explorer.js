// The ucanlog explorer page (docs/auditing.md "Explorer"). Three views, chosen from the URL:
// - `/`                         the logs of this service (/logs.txt, /logs/<space>/head) and its witness policy (/info);
// - `/logs/<space>/`            one log of this service;
// - `/?base=<tile root>[&vkey=<log vkey>]`  one log read from any copy of its tiles (a gateway).
// Everything shown as verified is computed here (explorer/tlog.js) from the public tlog-tiles
// files; the service's JSON (head, info) only suggests keys, which the user can replace.
import * as tlog from './tlog.js'

const PAGE = 25
/** Logs whose head the list view fetches at once (one page). */
const LOGS_PAGE = 25
/** Checkpoints kept per log in this browser's history (chart and signed roots for consistency). */
const MAX_HISTORY = 500
/** Bytes of an entry shown in the table (the proof panel shows up to PREVIEW_BYTES). */
const CELL_BYTES = 120
const PREVIEW_BYTES = 4096

const main = document.getElementById('main')

// ---- DOM helpers (textContent only: log data never becomes markup) ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c))
  return el
}

function status(el, ok, text) {
  el.className = ok === true ? 'status ok' : ok === false ? 'status bad' : 'status'
  el.textContent = text
  el.dataset.state = ok === true ? 'ok' : ok === false ? 'failed' : 'pending'
}

const fmtTime = (s) => (s ? new Date(s * 1000).toISOString().replace('.000Z', 'Z') : '—')
const short = (hex) => `${hex.slice(0, 16)}…`

/** Text when `bytes` is UTF-8 without control or bidi-override characters (tab and newlines aside), else hex. */
function render(bytes, max) {
  const cut = bytes.subarray(0, max)
  const more = bytes.length > max ? '…' : ''
  try {
    const s = new TextDecoder('utf-8', { fatal: true }).decode(cut)
    // Control and bidirectional-override characters could hide or reorder what is shown: hex then.
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(s)) return { kind: 'text', value: s + more }
  } catch {
    // not UTF-8 (or cut inside a character): hex
  }
  return { kind: 'hex', value: tlog.toHex(cut) + more }
}

async function getJSON(url) {
  const res = await fetch(url, { cache: 'no-store' })
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
  return res.json()
}

// ---- local state: pinned keys and checkpoint history (localStorage, bounded) ----

const store = {
  get(k) {
    try {
      return JSON.parse(localStorage.getItem(`ucanlog-explorer:${k}`) ?? 'null')
    } catch {
      return null
    }
  },
  set(k, v) {
    try {
      localStorage.setItem(`ucanlog-explorer:${k}`, JSON.stringify(v))
    } catch {
      // storage full or disabled: the page works without history
    }
  },
}

function recordCheckpoint(origin, cp, note) {
  const hist = store.get(`history:${origin}`) ?? []
  const last = hist[hist.length - 1]
  if (!last || last.size !== cp.size || last.root !== cp.rootBase64) hist.push({ size: cp.size, root: cp.rootBase64, seen: Date.now(), note })
  while (hist.length > MAX_HISTORY) hist.shift()
  store.set(`history:${origin}`, hist)
  return hist
}

// ---- list view ----

function parseLogList(text) {
  const logs = []
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ', 2)
    if (k === 'vkey') logs.push({ vkey: v, origin: v.split('+')[0] })
    else if (k === 'origin' && logs.length) logs[logs.length - 1].origin = v
  }
  return logs
}

async function listView() {
  main.replaceChildren()
  const policyBox = h('section', { id: 'policy' }, h('h2', {}, 'Witness policy'), h('p', {}, 'Loading /info…'))
  const logsBox = h('section', { id: 'logs' }, h('h2', {}, 'Logs'))
  main.append(logsBox, policyBox)
  try {
    const info = await getJSON('/info')
    const p = tlog.parsePolicy(info.witnessPolicy ?? '')
    policyBox.replaceChildren(
      h('h2', {}, 'Witness policy'),
      h('p', {}, 'A checkpoint is published only once this quorum has cosigned it: ', h('code', {}, p.quorum)),
      h('table', {}, h('tr', {}, h('th', {}, 'witness'), h('th', {}, 'key'), h('th', {}, 'url')), p.witnesses.map((w) => h('tr', {}, h('td', {}, w.name), h('td', { class: 'mono' }, w.vkey), h('td', { class: 'mono' }, w.url ?? '')))),
      h('details', {}, h('summary', {}, 'policy text'), h('pre', {}, info.witnessPolicy)),
      h('p', { class: 'sub' }, `service ${info.did} · version ${info.version}`),
    )
  } catch (e) {
    policyBox.replaceChildren(h('h2', {}, 'Witness policy'), h('p', { class: 'status bad' }, String(e.message)))
  }
  let logs
  try {
    const res = await fetch('/logs.txt', { cache: 'no-store' })
    logs = parseLogList(await res.text())
  } catch (e) {
    logsBox.append(h('p', { class: 'status bad' }, String(e.message)))
    return
  }
  const table = h('table', { id: 'log-table' })
  const nav = h('p', { class: 'nav' })
  logsBox.append(h('p', {}, `${logs.length} logs (from /logs.txt). Size and times are what each log's /head says; open a log to verify.`), table, nav)
  let page = 0
  async function show() {
    table.replaceChildren(h('tr', {}, h('th', {}, 'origin'), h('th', {}, 'size'), h('th', {}, 'last cosigned'), h('th', {}, 'upload lag (entries)')))
    for (const l of logs.slice(page * LOGS_PAGE, (page + 1) * LOGS_PAGE)) {
      const space = /\/logs\/(did:key:[^/]+)$/.exec(l.origin)?.[1]
      const href = space ? `/logs/${space}/` : `/?base=${encodeURIComponent(new URL('/revocations/', location.href).href)}&vkey=${encodeURIComponent(l.vkey)}`
      const row = h('tr', { class: 'log' }, h('td', { class: 'mono' }, h('a', { href }, l.origin)), h('td', {}, '…'), h('td', {}, '…'), h('td', {}, '…'))
      table.append(row)
      const headUrl = space ? `/logs/${space}/head` : null
      ;(async () => {
        let size, time, lag
        if (headUrl) {
          const head = await getJSON(headUrl)
          size = head.treeSize
          time = latestCosignature(head.checkpoint)
          lag = head.upload ? `${head.upload.lagEntries} (${head.upload.state})` : 'uploads off'
        } else {
          const res = await fetch(new URL('/revocations/checkpoint', location.href), { cache: 'no-store' })
          const note = res.status === 404 ? undefined : await res.text()
          size = note ? tlog.parseCheckpoint(tlog.parseNote(note).text).size : '0 (nothing published)'
          time = note ? latestCosignature(note) : 0
          lag = '—'
        }
        row.children[1].textContent = String(size)
        row.children[2].textContent = fmtTime(time)
        row.children[3].textContent = lag
      })().catch((e) => {
        row.children[1].textContent = String(e.message)
      })
    }
    nav.replaceChildren(
      h('button', { disabled: page === 0, onclick: () => (page--, show()) }, '← previous'),
      ` page ${page + 1} of ${Math.max(1, Math.ceil(logs.length / LOGS_PAGE))} `,
      h('button', { disabled: (page + 1) * LOGS_PAGE >= logs.length, onclick: () => (page++, show()) }, 'next →'),
    )
  }
  await show()
}

/** The newest cosignature timestamp on a note (unverified: the list view only reports). */
function latestCosignature(note) {
  let t = 0
  try {
    for (const s of tlog.parseNote(note).signatures) {
      if (s.sig.length === 72) t = Math.max(t, Number(new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0)))
    }
  } catch {
    // a malformed note has no time
  }
  return t
}

// ---- log view ----

async function logView({ base, headUrl, infoUrl, vkeyParam, pollSeconds }) {
  main.replaceChildren()
  const src = new tlog.TileSource(base)
  const head = headUrl ? await getJSON(headUrl).catch(() => null) : null
  const info = infoUrl ? await getJSON(infoUrl).catch(() => null) : null

  // Keys: given in the URL or pasted > pinned in this browser > suggested by the service.
  const keysBox = h('section', { id: 'keys' }, h('h2', {}, 'Keys this page verifies with'))
  const cpBox = h('section', { id: 'checkpoint' }, h('h2', {}, 'Latest checkpoint'))
  const chartBox = h('section', { id: 'chart' }, h('h2', {}, 'Tree size over time'))
  const entriesBox = h('section', { id: 'entries' }, h('h2', {}, 'Entries'))
  const proofBox = h('section', { id: 'inclusion' }, h('h2', {}, 'Inclusion proof'), h('p', {}, 'Click an entry to verify its inclusion here, from the tiles.'))
  const consBox = h('section', { id: 'consistency' }, h('h2', {}, 'Consistency between two sizes'))
  main.append(h('p', { class: 'mono', id: 'base' }, `tile root: ${base}`), keysBox, cpBox, chartBox, entriesBox, proofBox, consBox)

  let note
  try {
    note = await src.checkpoint()
  } catch (e) {
    cpBox.append(h('p', { class: 'status bad', id: 'checkpoint-status', 'data-state': 'failed' }, `checkpoint unreadable: ${e.message}`))
    return
  }
  const origin = tlog.parseCheckpoint(tlog.parseNote(note).text).origin
  // A key pinned in this browser wins over one in the link (?vkey=) or the service's (/head): a
  // link cannot swap the key a pinned log is checked with; a different suggestion is flagged.
  const pinned = store.get(`vkey:${origin}`)
  const suggested = vkeyParam ?? head?.vkey
  const vkeyInput = h('input', { id: 'vkey', class: 'mono', size: 90, value: pinned ?? suggested ?? '' })
  const policyInput = h('textarea', { id: 'policy-text', class: 'mono', rows: 4, cols: 90 }, store.get(`policy:${origin}`) ?? info?.witnessPolicy ?? '')
  const keyNote = pinned
    ? suggested && suggested.trim() !== pinned
      ? h('span', { id: 'key-warning', class: 'status bad' }, `${vkeyParam ? 'The link' : 'The service'} names another key (${suggested}) than the one pinned here; verifying with the pinned key.`)
      : 'Pinned in this browser.'
    : head
      ? 'Suggested by the service (/head). Paste your own to verify against it.'
      : vkeyParam
        ? 'From the link (?vkey=). Paste the key you trust and pin it.'
        : 'Paste the log key you trust (a copy of the tiles carries no key).'
  keysBox.append(
    h('label', {}, 'log key (vkey) ', vkeyInput),
    h('p', { class: 'sub' }, keyNote),
    h('label', {}, 'witness policy (c2sp.org/tlog-policy) ', policyInput),
    h('p', {}, h('button', { id: 'pin', onclick: () => (store.set(`vkey:${origin}`, vkeyInput.value.trim()), store.set(`policy:${origin}`, policyInput.value), location.reload()) }, 'Pin these keys and re-verify')),
  )

  const state = { checkpoint: undefined, verified: false, note }
  const cpStatus = h('p', { id: 'checkpoint-status', class: 'status' })
  cpBox.append(cpStatus)
  try {
    const policy = policyInput.value.trim() ? tlog.parsePolicy(policyInput.value) : undefined
    const v = await tlog.verifyCheckpointNote(note, vkeyInput.value, policy)
    state.checkpoint = v.checkpoint
    state.verified = v.logSignature && v.origin && (!policy || v.quorum)
    cpBox.append(
      h('table', {},
        h('tr', {}, h('th', {}, 'origin'), h('td', { class: 'mono' }, v.checkpoint.origin)),
        h('tr', {}, h('th', {}, 'size'), h('td', { id: 'tree-size' }, String(v.checkpoint.size))),
        h('tr', {}, h('th', {}, 'root hash'), h('td', { class: 'mono' }, v.checkpoint.rootBase64)),
        h('tr', {}, h('th', {}, 'log signature'), h('td', { class: v.logSignature ? 'ok' : 'bad' }, v.logSignature ? `valid (Ed25519, key ${vkeyInput.value.split('+')[1]})` : 'INVALID or missing')),
      ),
      h('h3', {}, 'Cosignatures'),
      h('table', { id: 'cosignatures' },
        h('tr', {}, h('th', {}, 'witness'), h('th', {}, 'key'), h('th', {}, 'time'), h('th', {}, 'signature')),
        v.cosignatures.map((c) => h('tr', {}, h('td', {}, c.name), h('td', { class: 'mono' }, c.vkey), h('td', {}, fmtTime(c.time)), h('td', { class: c.valid ? 'ok' : 'bad' }, c.valid ? 'valid' : 'INVALID'))),
        v.unknown.map((n) => h('tr', {}, h('td', {}, n), h('td', {}, 'not in the policy'), h('td', {}), h('td', {}, 'not checked'))),
      ),
      h('p', {}, policy ? (v.quorum ? `Quorum "${policy.quorum}" met.` : `Quorum "${policy.quorum}" NOT met.`) : 'No witness policy given: cosignatures not checked.'),
      h('details', {}, h('summary', {}, 'checkpoint note'), h('pre', {}, note)),
    )
    if (!v.origin) status(cpStatus, false, `checkpoint FAILED: the origin is not the key's name (${v.checkpoint.origin})`)
    else if (!v.logSignature) status(cpStatus, false, 'checkpoint FAILED: the log signature does not verify with this key')
    else if (policy && !v.quorum) status(cpStatus, false, 'checkpoint FAILED: the witness quorum is not met')
    else status(cpStatus, true, `checkpoint verified: signed by the log${policy ? ', witness quorum met' : ''}`)
  } catch (e) {
    status(cpStatus, false, `checkpoint FAILED: ${e.message}`)
    return
  }
  const size = state.checkpoint.size
  const history = state.verified ? recordCheckpoint(origin, state.checkpoint, note) : (store.get(`history:${origin}`) ?? [])
  // The service's history (null from a source without the route: local points only).
  let service = await fetchServiceHistory(base)
  drawChart(chartBox, history, service)
  // While the page is open, the checkpoint is fetched every pollSeconds; a new one that verifies
  // with the same keys joins the history (and the chart). Browsing stays on the tree loaded.
  const live = h('p', { id: 'live-status', class: 'sub' }, `Checking for new checkpoints every ${pollSeconds} s.`)
  chartBox.append(live)
  let polling = false
  setInterval(async () => {
    if (polling || !state.verified) return
    polling = true
    try {
      const next = await src.checkpoint()
      const policy = policyInput.value.trim() ? tlog.parsePolicy(policyInput.value) : undefined
      const v = await tlog.verifyCheckpointNote(next, vkeyInput.value, policy)
      const ok = v.logSignature && v.origin && (!policy || v.quorum)
      if (!ok) status(live, false, `a newer checkpoint (size ${v.checkpoint.size}) does NOT verify with these keys`)
      else if (v.checkpoint.size !== history[history.length - 1]?.size) {
        history.splice(0, history.length, ...recordCheckpoint(origin, v.checkpoint, next))
        if (service !== null) service = (await fetchServiceHistory(base)) ?? service
        chartBox.querySelector('#size-chart')?.remove()
        chartBox.querySelector('#chart-caption')?.remove()
        drawChart(chartBox, history, service, live)
        status(live, true, `new checkpoint verified: size ${v.checkpoint.size} (reload to browse it)`)
      }
    } catch (e) {
      status(live, false, `checkpoint poll failed: ${e.message}`)
    } finally {
      polling = false
    }
  }, pollSeconds * 1000)

  // Entries, page by page, from the entry bundles.
  const table = h('table', { id: 'entry-table' })
  const nav = h('p', { class: 'nav' })
  entriesBox.append(nav, table)
  let start = 0
  async function showEntries() {
    table.replaceChildren(h('tr', {}, h('th', {}, 'index'), h('th', {}, 'bytes'), h('th', {}, 'leaf hash'), h('th', {}, 'content')))
    const end = Math.min(size, start + PAGE)
    const rows = []
    for (let b = Math.floor(start / 256); b * 256 < end; b++) {
      const entries = await src.bundle(b, size)
      for (let i = Math.max(start, b * 256); i < Math.min(end, (b + 1) * 256); i++) rows.push([i, entries[i - b * 256]])
    }
    for (const [i, e] of rows) {
      const r = render(e, CELL_BYTES)
      table.append(h('tr', { class: 'entry', 'data-index': i, onclick: () => verifyInclusion(i, e) },
        h('td', {}, String(i)), h('td', {}, String(e.length)), h('td', { class: 'mono' }, short(tlog.toHex(await tlog.leafHash(e)))), h('td', { class: r.kind }, r.value)))
    }
    const goto = h('input', { id: 'goto', type: 'number', min: 0, max: Math.max(0, size - 1), size: 8 })
    nav.replaceChildren(
      h('button', { id: 'prev', disabled: start === 0, onclick: () => ((start = Math.max(0, start - PAGE)), showEntries()) }, '← previous'),
      h('span', { id: 'range' }, ` entries ${size ? start : 0}–${end - 1} of ${size} `),
      h('button', { id: 'next', disabled: end >= size, onclick: () => ((start += PAGE), showEntries()) }, 'next →'),
      ' go to index ', goto,
      h('button', { id: 'goto-button', onclick: () => { const n = Number(goto.value); if (Number.isSafeInteger(n) && n >= 0 && n < size) { start = n - (n % PAGE); showEntries() } } }, 'go'),
    )
  }
  showEntries().catch((e) => table.append(h('tr', {}, h('td', { class: 'bad', colspan: 4 }, `entries unreadable: ${e.message}`))))

  async function verifyInclusion(index, entry) {
    const out = h('div')
    const st = h('p', { id: 'inclusion-status', class: 'status' })
    proofBox.replaceChildren(h('h2', {}, `Inclusion proof of entry ${index}`), st, out)
    status(st, undefined, 'verifying…')
    try {
      const r = render(entry, PREVIEW_BYTES)
      const leaf = await tlog.leafHash(entry)
      const stored = await src.storedLeafHash(index, size)
      const proof = await tlog.inclusionProof(src, index, size)
      const root = await tlog.rootFromInclusionProof(proof, index, size, leaf)
      out.append(
        h('p', {}, `${entry.length} bytes, shown as ${r.kind}:`), h('pre', { class: r.kind, id: 'entry-content' }, r.value),
        h('table', {},
          h('tr', {}, h('th', {}, 'leaf hash SHA-256(0x00 ‖ entry)'), h('td', { class: 'mono' }, tlog.toHex(leaf))),
          h('tr', {}, h('th', {}, 'leaf hash in tile 0'), h('td', { class: tlog.equalBytes(stored, leaf) ? 'mono ok' : 'mono bad' }, tlog.toHex(stored))),
          proof.map((p, k) => h('tr', {}, h('th', {}, `proof[${k}]`), h('td', { class: 'mono' }, tlog.toHex(p)))),
          h('tr', {}, h('th', {}, 'root computed from the proof'), h('td', { class: 'mono' }, tlog.toHex(root))),
          h('tr', {}, h('th', {}, `root signed at size ${size}`), h('td', { class: 'mono' }, tlog.toHex(state.checkpoint.root))),
        ),
        h('p', { class: 'sub' }, `${proof.length} proof hashes built from the tiles (${src.stats.fetched} files read so far).`),
      )
      if (!tlog.equalBytes(stored, leaf)) throw new tlog.VerificationError("the leaf hash stored in tile 0 is not the entry's")
      if (!tlog.equalBytes(root, state.checkpoint.root)) throw new tlog.VerificationError('the root computed from the proof is not the checkpoint\'s')
      if (!state.verified) throw new tlog.VerificationError('the proof matches the root, but the checkpoint itself did not verify')
      status(st, true, `inclusion verified: entry ${index} is in the log of ${size} entries signed by the log key`)
    } catch (e) {
      status(st, false, `inclusion FAILED: ${e.message}`)
    }
  }

  // Consistency between two sizes, from the tiles of the latest tree.
  const signedRoots = new Map(history.filter((c) => c.size <= size).map((c) => [c.size, c.root]))
  const oldIn = h('input', { id: 'old-size', type: 'number', min: 1, max: size, value: history.find((c) => c.size < size)?.size ?? Math.max(1, Math.floor(size / 2)) })
  const newIn = h('input', { id: 'new-size', type: 'number', min: 1, max: size, value: size })
  const consStatus = h('p', { id: 'consistency-status', class: 'status' })
  const consOut = h('div')
  consBox.append(
    h('p', {}, 'Proves the tree of the smaller size is a prefix of the larger (RFC 6962 §2.1.2). A root comes from a checkpoint this browser saw and verified when there is one (', h('span', { id: 'signed-sizes' }, [...signedRoots.keys()].join(', ') || 'none yet'), '), else it is computed from the tiles.'),
    h('p', {}, 'old size ', oldIn, ' new size ', newIn, ' ', h('button', { id: 'check-consistency', onclick: () => checkConsistency() }, 'check')),
    consStatus, consOut,
  )
  async function rootAt(n) {
    if (n === size) return { root: state.checkpoint.root, from: 'latest checkpoint (signed)' }
    const s = signedRoots.get(n)
    if (s) return { root: tlog.fromBase64(s), from: 'checkpoint seen earlier (signed)' }
    return { root: await src.subtreeHash(0, n, size), from: 'computed from the tiles (unsigned)' }
  }
  async function checkConsistency() {
    consOut.replaceChildren()
    status(consStatus, undefined, 'verifying…')
    try {
      const m = Number(oldIn.value)
      const n = Number(newIn.value)
      if (!(Number.isSafeInteger(m) && Number.isSafeInteger(n) && m >= 1 && m <= n && n <= size)) throw new tlog.VerificationError(`want 1 ≤ old ≤ new ≤ ${size}`)
      const [a, b] = [await rootAt(m), await rootAt(n)]
      const proof = n === size ? await tlog.consistencyProof(src, m, n) : await consistencyAt(m, n)
      consOut.append(h('table', {},
        h('tr', {}, h('th', {}, `root at ${m}`), h('td', { class: 'mono' }, tlog.toHex(a.root)), h('td', {}, a.from)),
        h('tr', {}, h('th', {}, `root at ${n}`), h('td', { class: 'mono' }, tlog.toHex(b.root)), h('td', {}, b.from)),
        proof.map((p, k) => h('tr', {}, h('th', {}, `proof[${k}]`), h('td', { class: 'mono' }, tlog.toHex(p)), h('td', {}))),
      ))
      await tlog.checkConsistency(proof, m, a.root, n, b.root)
      status(consStatus, true, `consistency verified: the tree of ${m} entries is a prefix of the tree of ${n}`)
    } catch (e) {
      status(consStatus, false, `consistency FAILED: ${e.message}`)
    }
  }
  /** PROOF(m, D[n]) for n < the latest size: the subtree hashes it needs are the same in the bigger tree's tiles. */
  async function consistencyAt(m, n) {
    const view = { subtreeHash: (lo, hi) => src.subtreeHash(lo, hi, size) }
    return tlog.consistencyProof(view, m, n)
  }
}

/** Most points of the service's history the chart asks for (the route's default; it allows 1000). */
const SERVICE_HISTORY_POINTS = 500

/**
 * The service's checkpoint history (`<base>history`, docs/wire.md): its unsigned claim of the
 * (size, root, time) of the checkpoints it published, or null when the source has no such route
 * (a copy of the tiles on a gateway) or answers anything malformed.
 */
async function fetchServiceHistory(base) {
  try {
    const res = await fetch(`${base}history?limit=${SERVICE_HISTORY_POINTS}`)
    if (!res.ok) return null
    const j = await res.json()
    if (!Array.isArray(j?.points)) return null
    const points = j.points.slice(0, 1000)
    const ok = (p) => Number.isSafeInteger(p?.size) && p.size >= 0 && typeof p.rootHash === 'string' && Number.isSafeInteger(p.time) && p.time >= 0
    return points.every(ok) ? points.map((p) => ({ size: p.size, root: p.rootHash, time: p.time })) : null
  } catch {
    return null
  }
}

/**
 * An SVG step chart of tree size against time: the checkpoints this browser verified (filled
 * green, data-kind="verified") merged with the service's history (hollow grey, "service": its
 * claim, not verified here; red, "conflict", when its root at a size differs from the one this
 * browser verified). `service` null: the source has no history route, local points only.
 */
function drawChart(box, history, service, before = null) {
  const NS = 'http://www.w3.org/2000/svg'
  const svg = (tag, attrs, ...kids) => {
    const el = document.createElementNS(NS, tag)
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
    el.append(...kids)
    return el
  }
  const add = (el) => box.insertBefore(el, before)
  const verified = new Map(history.map((c) => [c.size, c.root]))
  const points = history.map((c) => ({ size: c.size, t: c.seen, kind: 'verified' }))
  for (const p of service ?? []) {
    const v = verified.get(p.size)
    if (v === p.root) continue // the same checkpoint, verified here: drawn once, as verified
    points.push({ size: p.size, t: p.time * 1000, kind: v === undefined ? 'service' : 'conflict' })
  }
  points.sort((a, b) => a.t - b.t || a.size - b.size)
  const n = (kind) => points.filter((p) => p.kind === kind).length
  const local = `${n('verified')} checkpoints verified by this browser (filled green; kept locally, last ${MAX_HISTORY})`
  add(h('p', { class: 'sub', id: 'chart-caption' },
    service === null
      ? `${local}. This source serves no checkpoint history, so the chart grows as you revisit.`
      : `${local}; ${n('service')} points of the service's history (hollow grey): the service's own claim (/history), unsigned and not verified here.` +
        (n('conflict') ? ` ${n('conflict')} of them (red) name another root than the checkpoint this browser verified at that size.` : '')))
  if (points.length === 0) return
  const W = 640, H = 160, P = 40
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1)
  const smax = Math.max(1, ...points.map((c) => c.size))
  const x = (t) => P + ((t - t0) / (t1 - t0)) * (W - 2 * P)
  const y = (s) => H - P / 2 - (s / smax) * (H - P)
  let d = ''
  points.forEach((c, i) => (d += i === 0 ? `M${x(c.t)},${y(c.size)}` : `H${x(c.t)}V${y(c.size)}`))
  const style = {
    verified: { fill: '#2a6', stroke: '#2a6', what: 'verified by this browser, seen' },
    service: { fill: 'white', stroke: '#888', what: "the service's claim, published" },
    conflict: { fill: '#c22', stroke: '#c22', what: "the service's claim (another root than the one verified here), published" },
  }
  add(svg('svg', { id: 'size-chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'tree size over time' },
    svg('line', { x1: P, y1: H - P / 2, x2: W - P, y2: H - P / 2, stroke: '#888' }),
    svg('path', { d, fill: 'none', stroke: '#2a6', 'stroke-width': 2 }),
    ...points.map((c) => svg('circle', { cx: x(c.t), cy: y(c.size), r: 3, fill: style[c.kind].fill, stroke: style[c.kind].stroke, 'data-kind': c.kind },
      svg('title', {}, `${c.size} entries, ${style[c.kind].what} ${new Date(c.t).toISOString()}`))),
    svg('text', { x: 2, y: y(smax) + 4, 'font-size': 11 }, String(smax)),
    svg('text', { x: P, y: H - 4, 'font-size': 11 }, new Date(t0).toISOString().slice(0, 19) + 'Z'),
    svg('text', { x: W - P, y: H - 4, 'font-size': 11, 'text-anchor': 'end' }, new Date(t1).toISOString().slice(0, 19) + 'Z'),
  ))
}

// ---- routing ----

async function start() {
  if (!globalThis.crypto?.subtle) {
    main.replaceChildren(h('p', { class: 'status bad' }, 'WebCrypto is unavailable (the page must be served over https or from localhost): nothing can be verified.'))
    return
  }
  const q = new URLSearchParams(location.search)
  const base = q.get('base')
  // ?poll=<seconds> (2..3600, default 30): how often an open log page looks for a new checkpoint.
  const pollSeconds = Math.min(3600, Math.max(2, Number(q.get('poll')) || 30))
  const m = /^\/logs\/(did:key:z[1-9A-HJ-NP-Za-km-z]+)\/$/.exec(location.pathname)
  if (base) {
    const b = new URL(base, location.href).href
    await logView({ base: b.endsWith('/') ? b : `${b}/`, vkeyParam: q.get('vkey') ?? undefined, pollSeconds })
  } else if (m) {
    await logView({ base: new URL(location.pathname, location.href).href, headUrl: `${location.pathname}head`, infoUrl: '/info', vkeyParam: q.get('vkey') ?? undefined, pollSeconds })
  } else {
    await listView()
  }
}

start().catch((e) => main.replaceChildren(h('p', { class: 'status bad', id: 'page-error' }, `error: ${e.message}`)))
