/**
 * Names a ucanto authorization failure. ucanto's `claim`/`access` answer a failed chain with one
 * collapsed `Unauthorized` tree whose JSON would echo every capability's `nb`; the client gets
 * instead the most specific ucanlog failure found in it (errors.ts), with a short message.
 */
import type { API } from '@ucanto/core'
import { Expired, InvalidSignature, NotValidBefore, Revoked, Unauthorized, truncate } from './errors.js'

/** What {@link authorizationFailure} answers. */
export type AuthorizationFailure = Unauthorized | InvalidSignature | Expired | NotValidBefore | Revoked

/**
 * Maps ucanto's collapsed `Unauthorized` tree (from `claim`/`access`) to our most specific
 * identifiable name: `Revoked`, `InvalidSignature`, `Expired`, `NotValidBefore`, else
 * `Unauthorized` saying `can` is not granted. Never includes the invocation's `nb`. The walk is
 * bounded (depth 64, 10,000 nodes) and survives cycles and throwing getters.
 */
export function authorizationFailure(error: API.Failure, can: string): AuthorizationFailure {
  const found = new Map<string, { delegation?: API.Delegation }>()
  const seen = new Set<unknown>()
  const walk = (node: unknown, depth: number): void => {
    if (node === null || typeof node !== 'object' || seen.has(node) || depth > 64 || seen.size > 10_000) return
    seen.add(node)
    const e = node as Record<string, unknown>
    if (typeof e.name === 'string' && !found.has(e.name)) found.set(e.name, e as { delegation?: API.Delegation })
    for (const key of ['cause', 'causes', 'failedProofs', 'invalidProofs', 'delegationErrors', 'info']) {
      const child = Object.getOwnPropertyDescriptor(e, key)?.value ?? (key === 'cause' ? safeGet(e, key) : undefined)
      if (Array.isArray(child)) for (const c of child) walk(c, depth + 1)
      else walk(child, depth + 1)
    }
  }
  walk(error, 0)
  const cid = (name: string): string => truncate(found.get(name)?.delegation?.cid?.toString() ?? '')
  if (found.has('Revoked')) return new Revoked(`UCAN ${cid('Revoked')} has been revoked`)
  if (found.has('InvalidSignature')) return new InvalidSignature(`UCAN ${cid('InvalidSignature')} has an invalid signature`)
  if (found.has('Expired')) return new Expired(`UCAN ${cid('Expired')} has expired`)
  if (found.has('NotValidBefore')) return new NotValidBefore(`UCAN ${cid('NotValidBefore')} is not valid yet`)
  return new Unauthorized(`delegation does not grant ${can} on the space`)
}

/** Reads a possibly-getter property without letting a throwing getter escape. */
function safeGet(o: Record<string, unknown>, key: string): unknown {
  try {
    return o[key]
  } catch {
    return undefined
  }
}
