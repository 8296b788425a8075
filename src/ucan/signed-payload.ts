/**
 * The bytes a UCAN 0.9 signature covers, built without dag-json. A ucanto (dag-ucan) UCAN is
 * signed over `base64url(JSON(header)) "." base64url(JSON(payload))`, the JSON being dag-json:
 * map keys sorted (UTF-16 code unit order), strings as `JSON.stringify` writes them, integers in
 * decimal, no whitespace; payload fields `att aud exp [fct] iss [nbf] [nnc] prf` (fct only when
 * non-empty, nnc and nbf only when truthy), `iss`/`aud` the DID strings, `prf` the proof CIDs as
 * strings (dag-ucan `formatSignPayload`). dag-json's generic tokenizer costs about as much as the
 * Ed25519 verify itself, and ucanto encodes the same payload again for every claim; this writes
 * it directly for the values a UCAN's capabilities hold in practice — strings, safe integers,
 * plain maps and lists of those — and answers `undefined` for anything else (bytes, links,
 * floats, booleans, null inside `att`/`fct`, non-plain objects), which the caller then verifies
 * through ucanto as before. test/ucan/signed-payload.test.ts checks the bytes against ucanto's.
 */
import { DID, UCAN } from '@ucanto/core'
import type { API } from '@ucanto/core'

/**
 * How many headers {@link header} keeps. A UCAN's version is any string holding `d.d.d` (dag-ucan's
 * `readVersion`), so a sender can vary it at will: past this many, headers are written afresh.
 */
const HEADER_CACHE_MAX = 16

/** Header JSON per `version alg`: `{"alg":…,"typ":"JWT","ucv":…}`, base64url; at most {@link HEADER_CACHE_MAX}. */
const headers = new Map<string, string>()

/** How many `version alg` headers are cached (0 to 16): the header cache's bound, for tests. */
export function cachedHeaderCount(): number {
  return headers.size
}

/** `base64url(JSON(header))` of dag-ucan's `formatHeader`. */
function header(version: string, alg: string): string {
  const key = `${version} ${alg}`
  let h = headers.get(key)
  if (h === undefined) {
    h = Buffer.from(`{"alg":${JSON.stringify(alg)},"typ":"JWT","ucv":${JSON.stringify(version)}}`, 'utf8').toString('base64url')
    // Versions and algorithms are a handful; a hostile variety is not kept.
    if (headers.size < HEADER_CACHE_MAX) headers.set(key, h)
  }
  return h
}

/** Thrown inside {@link json} for a value it does not write (the caller falls back to ucanto). */
const UNSUPPORTED = Symbol('unsupported')

/** dag-json of `value` when it is a string, a safe integer, or a plain map/list of those; throws {@link UNSUPPORTED} otherwise. */
function json(value: unknown, depth: number): string {
  if (depth > 32) throw UNSUPPORTED
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) throw UNSUPPORTED
      return String(value)
    case 'object': {
      if (value === null) throw UNSUPPORTED
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + json(value[i], depth + 1)
        return `${out}]`
      }
      const proto = Object.getPrototypeOf(value) as unknown
      if (proto !== Object.prototype && proto !== null) throw UNSUPPORTED
      const o = value as Record<string, unknown>
      // dag-json's CID and bytes forms are objects with a "/" key; dag-json would also treat
      // anything with an `asCID` as a link. Leave them all to it.
      if ('/' in o || 'asCID' in o) throw UNSUPPORTED
      const keys = Object.keys(o).sort()
      let out = '{'
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string
        out += `${i === 0 ? '' : ','}${JSON.stringify(k)}:${json(o[k], depth + 1)}`
      }
      return `${out}}`
    }
    default:
      throw UNSUPPORTED
  }
}

/** The decoded UCAN model fields this file reads (dag-ucan's `UCAN.Model`). */
interface Model {
  v: string
  att: unknown
  exp: number | null
  nbf?: number | undefined
  nnc?: string | undefined
  fct: unknown[]
  prf: { toString(): string }[]
  s: { algorithm: string }
}

/**
 * The bytes `ucan`'s issuer signed (what dag-ucan's `verifySignature` verifies), with `iss`/`aud`
 * the given DID strings (the UCAN's own, formatted by the caller); or undefined when the UCAN
 * holds a value this writer leaves to ucanto, or is a JWT-encoded UCAN.
 */
export function signedPayload(ucan: API.Delegation, iss: API.DID, aud: API.DID): Uint8Array | undefined {
  const view = ucan.data as unknown as { model: Model; jwt?: unknown }
  if (view.jwt !== undefined) return undefined
  const m = view.model
  try {
    let exp: string
    if (m.exp === null) exp = 'null'
    else exp = json(m.exp, 0)
    let body = `{"att":${json(m.att, 0)},"aud":${JSON.stringify(aud)},"exp":${exp}`
    if (m.fct.length > 0) body += `,"fct":${json(m.fct, 0)}`
    body += `,"iss":${JSON.stringify(iss)}`
    if (m.nbf) body += `,"nbf":${json(m.nbf, 0)}`
    if (m.nnc) body += `,"nnc":${json(m.nnc, 0)}`
    body += `,"prf":[${m.prf.map((link) => JSON.stringify(link.toString())).join(',')}]}`
    const text = `${header(m.v, m.s.algorithm)}.${Buffer.from(body, 'utf8').toString('base64url')}`
    return Buffer.from(text, 'utf8')
  } catch (err) {
    if (err === UNSUPPORTED) return undefined
    throw err
  }
}

/**
 * Whether `ucan`'s signature verifies under `verifier` (whose DID must be the issuer's, as
 * dag-ucan's `verifySignature` requires), over {@link signedPayload}; `fallback` (ucanto's
 * `UCAN.verifySignature`) when the payload is not one this file writes.
 */
export async function verifyUcanSignature(
  ucan: API.Delegation,
  verifier: API.Verifier,
  dids: { iss: API.DID; aud: API.DID },
  fallback: () => API.Await<boolean>,
): Promise<boolean> {
  const payload = signedPayload(ucan, dids.iss, dids.aud)
  if (payload === undefined) return fallback()
  if (verifier.did() !== dids.iss) return false
  return verifier.verify(payload, ucan.signature as API.Signature<unknown, number>)
}

/**
 * How many did:key strings {@link formatPrincipal} keeps. A request's UCANs name a handful of keys
 * (agent, service, space), formatted on every append (base58, a visible share of a worker's CPU);
 * a hostile variety only churns the oldest out.
 */
export const DID_KEY_CACHE_MAX = 256

/** did:key string per principal bytes (latin1), oldest first; at most {@link DID_KEY_CACHE_MAX}. */
const didKeys = new Map<string, API.DID>()

/** How many did:key strings are cached (0 to {@link DID_KEY_CACHE_MAX}): the bound, for tests. */
export function cachedDidKeyCount(): number {
  return didKeys.size
}

/** dag-ucan's did:key principal view class (its `did()` is `did:key:` + base58btc of its bytes). */
const DID_KEY_VIEW = Object.getPrototypeOf(DID.parse('did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK')) as object

/**
 * `principal.did()`; for dag-ucan's did:key view (a function of its bytes alone) remembered per
 * bytes, so the same key is written in base58 once rather than on every UCAN naming it.
 * @throws where `principal.did()` throws.
 */
function formatPrincipal(principal: API.Principal): API.DID {
  if (!(principal instanceof Uint8Array) || Object.getPrototypeOf(principal) !== DID_KEY_VIEW) return principal.did()
  const key = Buffer.from(principal.buffer, principal.byteOffset, principal.byteLength).toString('latin1')
  let did = didKeys.get(key)
  if (did === undefined) {
    did = principal.did()
    if (didKeys.size >= DID_KEY_CACHE_MAX) didKeys.delete(didKeys.keys().next().value as string)
    didKeys.set(key, did)
  }
  return did
}

/** A UCAN's issuer and audience DIDs, each formatted once per Delegation object. */
const issuers = new WeakMap<API.Delegation, API.DID>()
const audiences = new WeakMap<API.Delegation, API.DID>()

/**
 * `ucan.issuer.did()`, formatted (base58) once per Delegation object.
 * @throws where ucanto's `issuer` getter throws (a DID that does not decode).
 */
export function issuerOf(ucan: API.Delegation): API.DID {
  let did = issuers.get(ucan)
  if (did === undefined) {
    did = formatPrincipal(ucan.issuer)
    issuers.set(ucan, did)
  }
  return did
}

/**
 * `ucan.audience.did()`, formatted (base58) once per Delegation object.
 * @throws where ucanto's `audience` getter throws (a DID that does not decode).
 */
export function audienceOf(ucan: API.Delegation): API.DID {
  let did = audiences.get(ucan)
  if (did === undefined) {
    did = formatPrincipal(ucan.audience)
    audiences.set(ucan, did)
  }
  return did
}

/**
 * {@link issuerOf} and {@link audienceOf} together.
 * @throws where either getter throws.
 */
export function didsOf(ucan: API.Delegation): { iss: API.DID; aud: API.DID } {
  return { iss: issuerOf(ucan), aud: audienceOf(ucan) }
}

/**
 * Whether `ucan`'s own signature verifies under its issuer's key (parsed by `principal`), over
 * {@link signedPayload}, or through ucanto's `UCAN.verifySignature` for payloads this file does not
 * write and for an issuer or audience DID that does not decode (ucanto reads only the issuer).
 * Never throws: an issuer `principal` cannot parse is `false`.
 */
export async function verifyIssuerSignature(ucan: API.Delegation, principal: API.PrincipalParser): Promise<boolean> {
  let dids: { iss: API.DID; aud: API.DID }
  try {
    dids = didsOf(ucan)
  } catch {
    try {
      return await UCAN.verifySignature(ucan.data, principal.parse(ucan.issuer.did()))
    } catch {
      return false
    }
  }
  try {
    const verifier = principal.parse(dids.iss)
    return await verifyUcanSignature(ucan, verifier, dids, () => UCAN.verifySignature(ucan.data, verifier))
  } catch {
    return false
  }
}
