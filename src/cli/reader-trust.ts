/**
 * The pins of the commands that read a log over HTTP (`ucanlog audit`, `ucanlog prove`): the trust
 * store's (src/client/trust-store.ts) resolved against the service, and the GET they use, whose
 * network failure is exit 4 (unreachable), never a failed check.
 */
import { readFile } from 'node:fs/promises'
import { type TrustAnchors, loadTrust, resolveTrust } from '../client/trust-store.js'
import { unreachable } from './exit-codes.js'

/** The flags both commands share: service URL, space DID, trust-store directory, explicit log vkey and witness policy file. */
export interface ReaderFlags {
  url: string
  space: string
  state: string
  logVkey?: string
  witnessPolicy?: string
}

/**
 * Resolves the anchors for this run (explicit flags, else pinned, else trust on first use; `notes`
 * say which were taken on first use, named by `firstUse`, e.g. `first audit`).
 * @returns the anchors, the notes, and `reach`: a GET throwing UnreachableError (exit 4) when the service cannot be reached.
 * @throws as resolveTrust (LogKeyChanged, NoPublishedLog, …), UnreachableError, and a file error for --witness-policy.
 */
export async function resolveReaderTrust(o: ReaderFlags, firstUse: string): Promise<{ anchors: TrustAnchors; notes: string[]; reach: (url: URL) => Promise<Response> }> {
  const reach = (url: URL) =>
    fetch(url).catch((err: unknown) => {
      throw unreachable(o.url, err)
    })
  const { anchors, notes } = await resolveTrust({
    url: o.url,
    space: o.space,
    stored: await loadTrust(o.state, o.space),
    explicit: { logVkey: o.logVkey, policy: o.witnessPolicy ? await readFile(o.witnessPolicy, 'utf8') : undefined },
    get: reach,
    firstUse,
  })
  return { anchors, notes, reach }
}
