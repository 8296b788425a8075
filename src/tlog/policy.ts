/**
 * Witness policies per c2sp.org/tlog-policy (the Sigsum policy format with vkeys):
 *
 *     log <vkey> [<url>]
 *     witness <name> <vkey> [<url>]
 *     group <name> all|any|<k> <member>...
 *     quorum <name>|none
 *
 * A checkpoint is valid under a policy if a listed log signed it and the witnesses whose
 * cosignatures verify satisfy the quorum. Fields are separated by runs of space or tab; empty
 * lines and lines whose first non-blank character is `#` are ignored.
 */
import { cosignatureVerifier } from './cosignature.js'
import { parseNote, parseVerifierKey, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519 } from './note.js'

/** Maximum policy size in characters (1 MiB); a bound, far above any real policy. */
export const MAX_POLICY_SIZE = 1 << 20
/** Maximum number of each of logs, witnesses and groups (the spec asks implementations for ≥ 32). */
export const MAX_POLICY_ENTRIES = 1024

/** A policy that does not parse or is inconsistent. The message starts with `line N:` (1-based). */
export class PolicyError extends Error {
  override name = 'PolicyError'
}

/**
 * A `witness` line. `name` is the policy-local name (used in groups and the quorum; it need not
 * equal the vkey's key name); `vkey` is a cosignature/v1 (type 0x04) vkey; `url`, when present, is
 * the witness's tlog-witness submission prefix.
 */
export interface PolicyWitness {
  name: string
  vkey: string
  url?: string
  verifier: ReturnType<typeof cosignatureVerifier>
}

/**
 * A parsed c2sp.org/tlog-policy.
 * - `logs`: the `log` lines; each vkey is Ed25519 (type 0x01), its key name should equal the origin.
 * - `witnesses`: the `witness` lines, in file order.
 * - `quorum`: the quorum's witness or group name, or "none".
 * - `satisfied(cosigned)`: whether the quorum is met when exactly the witnesses named in
 *   `cosigned` (policy names, e.g. from verifiedWitnesses) have cosigned. "none" is always met.
 * - `text`: the policy as given.
 */
export interface Policy {
  logs: { vkey: string; url?: string }[]
  witnesses: PolicyWitness[]
  quorum: string
  satisfied(cosigned: ReadonlySet<string>): boolean
  text: string
}

type Component = { kind: 'witness' } | { kind: 'group'; threshold: number; members: string[] }

/**
 * Parses a c2sp.org/tlog-policy file.
 * Rules enforced: only bytes 0x09, 0x0A, 0x20–0x7E and ≥ 0x80 (so no CR); known keywords only, with
 * the right number of fields; log vkeys type 0x01 and witness vkeys type 0x04, each well formed
 * with a matching key ID; no two logs and no two witnesses wrapping the same public key; witness
 * and group names unique (sharing one namespace) and never `none`; group thresholds `any`, `all`
 * or canonical decimal 1 ≤ k ≤ n with n ≥ 1; group members and the quorum defined on an earlier
 * line; each name a group member at most once in the whole file (so `none` never is); exactly one
 * quorum line.
 * @throws PolicyError whose message names the offending line number (1-based).
 */
export function parsePolicy(text: string): Policy {
  if (typeof text !== 'string') throw new PolicyError('policy is not a string')
  if (text.length > MAX_POLICY_SIZE) throw new PolicyError(`policy is larger than ${MAX_POLICY_SIZE} characters`)
  const logs: { vkey: string; url?: string }[] = []
  const witnesses: PolicyWitness[] = []
  const components = new Map<string, Component>()
  const logKeys = new Set<string>()
  const witnessKeys = new Set<string>()
  const usedAsMember = new Set<string>()
  let groups = 0
  let quorum: string | undefined

  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop() // the final line's terminating newline
  lines.forEach((line, i) => {
    const n = i + 1
    const fail = (msg: string): never => {
      throw new PolicyError(`line ${n}: ${msg}`)
    }
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(line)) fail('invalid character (only tab, newline, printable ASCII and non-ASCII are allowed)')
    const fields = line.split(/[ \t]+/).filter((f) => f !== '')
    if (fields.length === 0 || fields[0]!.startsWith('#')) return
    const [keyword, ...args] = fields as [string, ...string[]]
    const defineName = (name: string) => {
      if (name === 'none') fail('the name "none" is predefined')
      if (components.has(name)) fail(`duplicate name "${name}"`)
    }
    switch (keyword) {
      case 'log': {
        if (args.length < 1 || args.length > 2) fail('want "log <vkey> [<url>]"')
        const [vkey, url] = args as [string, string?]
        const k = parseKey(vkey, SIG_TYPE_ED25519, 'log', fail)
        if (logKeys.has(k)) fail('duplicate log key')
        if (logs.length >= MAX_POLICY_ENTRIES) fail(`more than ${MAX_POLICY_ENTRIES} logs`)
        logKeys.add(k)
        logs.push(url === undefined ? { vkey } : { vkey, url })
        break
      }
      case 'witness': {
        if (args.length < 2 || args.length > 3) fail('want "witness <name> <vkey> [<url>]"')
        const [name, vkey, url] = args as [string, string, string?]
        defineName(name)
        const k = parseKey(vkey, SIG_TYPE_COSIGNATURE_V1, 'witness', fail)
        if (witnessKeys.has(k)) fail('duplicate witness key')
        if (witnesses.length >= MAX_POLICY_ENTRIES) fail(`more than ${MAX_POLICY_ENTRIES} witnesses`)
        witnessKeys.add(k)
        components.set(name, { kind: 'witness' })
        const verifier = cosignatureVerifier(vkey)
        witnesses.push(url === undefined ? { name, vkey, verifier } : { name, vkey, url, verifier })
        break
      }
      case 'group': {
        if (args.length < 3) fail('want "group <name> all|any|<k> <member>..."')
        const [name, thresholdField, ...members] = args as [string, string, ...string[]]
        defineName(name)
        let threshold: number
        if (thresholdField === 'any') threshold = 1
        else if (thresholdField === 'all') threshold = members.length
        else if (/^[1-9][0-9]{0,5}$/.test(thresholdField)) threshold = Number(thresholdField)
        else return fail(`invalid group threshold "${thresholdField}"`)
        if (threshold > members.length) fail(`group threshold ${threshold} is larger than its ${members.length} members`)
        for (const m of members) {
          if (m === 'none') fail('"none" cannot be a group member')
          if (!components.has(m)) fail(`group member "${m}" is not defined on an earlier line`)
          if (usedAsMember.has(m)) fail(`"${m}" is already a group member`)
          usedAsMember.add(m)
        }
        if (++groups > MAX_POLICY_ENTRIES) fail(`more than ${MAX_POLICY_ENTRIES} groups`)
        components.set(name, { kind: 'group', threshold, members })
        break
      }
      case 'quorum': {
        if (args.length !== 1) fail('want "quorum <name>|none"')
        if (quorum !== undefined) fail('more than one quorum line')
        const [name] = args as [string]
        if (name !== 'none' && !components.has(name)) fail(`quorum "${name}" is not defined on an earlier line`)
        quorum = name
        break
      }
      default:
        fail(`unknown keyword "${keyword}"`)
    }
  })
  if (quorum === undefined) throw new PolicyError(`line ${lines.length + 1}: end of policy without a quorum line`)

  const q = quorum
  const met = (name: string, cosigned: ReadonlySet<string>): boolean => {
    const c = components.get(name)!
    if (c.kind === 'witness') return cosigned.has(name)
    let count = 0
    for (const m of c.members) if (met(m, cosigned)) count++
    return count >= c.threshold
  }
  return {
    logs,
    witnesses,
    quorum: q,
    satisfied: (cosigned) => q === 'none' || met(q, cosigned),
    text,
  }
}

/**
 * Returns the policy names of the witnesses with a valid cosignature in a signed note (usually a
 * checkpoint carrying the log's signature and witness cosignatures). A witness signature line is
 * matched by the vkey's key name and key ID; lines that do not verify, or from keys not in the
 * policy, are ignored (they are not an error here: check the log's own signature with openNote).
 * @throws MalformedNoteError if `noteMsg` is not a well-formed note.
 */
export function verifiedWitnesses(policy: Policy, noteMsg: string): Set<string> {
  const { text, signatures } = parseNote(noteMsg)
  const msg = new TextEncoder().encode(text)
  const out = new Set<string>()
  for (const sig of signatures) {
    for (const w of policy.witnesses) {
      if (out.has(w.name) || w.verifier.name !== sig.name || w.verifier.keyId !== sig.keyId) continue
      if (w.verifier.verify(msg, sig.signature)) out.add(w.name)
    }
  }
  return out
}

/** Parses a vkey of the wanted type; returns its public key as hex, to detect duplicate keys. */
function parseKey(vkey: string, type: number, what: string, fail: (msg: string) => never): string {
  let k: ReturnType<typeof parseVerifierKey>
  try {
    k = parseVerifierKey(vkey)
  } catch (e) {
    return fail(`invalid ${what} vkey: ${(e as Error).message}`)
  }
  if (k.type !== type) fail(`${what} vkey must have signature type 0x${type.toString(16).padStart(2, '0')}, got 0x${k.type.toString(16).padStart(2, '0')}`)
  return Buffer.from(k.publicKey).toString('hex')
}
