/**
 * One verified run of appends to one log, wired end to end: the trust store read, the anchors
 * resolved (trust on first use), an {@link AppendVerifier} over the log's public files, and at the
 * end the run settled and the new last checkpoint pinned. What `ucanlog append` and the library's
 * `append()` both call, so they verify and pin exactly alike (and alike with `ucanlog audit`).
 */
import { type ResolveTrustOptions, type TrustAnchors, loadTrust, resolveTrust, saveTrust } from './trust-store.js'
import { httpLogFiles } from './http.js'
import { AppendVerifier } from './verify-append.js'

/** Options of {@link openAppendVerification}. */
export interface AppendVerificationOptions {
  /** The service base URL. */
  url: string
  /** The space DID (`did:key:z…`) whose log the run appends to. */
  space: string
  /** The trust-store directory ({@link defaultStateDir}); omitted: nothing is read or written on disk (pass `stored`). */
  stateDir?: string
  /** Anchors known already, when there is no `stateDir` (e.g. an app keeping its own pins). */
  stored?: TrustAnchors
  /** Values the user gave (`--log-vkey`, the text of `--witness-policy`, `--service-did`): they win over pins and are pinned. */
  explicit?: ResolveTrustOptions['explicit']
  /** HTTP GET (default `fetch`); its rejection (service unreachable) propagates as is, so the caller names it. */
  get?: (url: URL) => Promise<Response>
  /** Creates the log when the space has no published checkpoint yet; see {@link ResolveTrustOptions.createLog}. */
  createLog?: ResolveTrustOptions['createLog']
  /** The verifier's clock, Unix seconds. */
  now?: () => number
}

/** An open verified run: verify each receipt with `verifier`, then `finish()` once. */
export interface AppendVerification {
  /** Verifies each receipt: `await verifier.verifyReceipt(receipt, entryBytes, invocationLink)`. */
  verifier: AppendVerifier
  /** The anchors this run checks against (serviceDid included: address invocations to it). */
  anchors: TrustAnchors
  /** Trust-on-first-use notes, one line each, for stderr (empty when everything was pinned or given). */
  notes: string[]
  /**
   * Settles the run ({@link AppendVerifier.settle}: consistency with the pin, with each other and
   * with the log's current checkpoint) and, with a `stateDir`, pins the result. Only after it
   * resolves may the run's `verified` receipts be called verified.
   * @returns the new anchors (`last` = the largest checkpoint verified).
   * @throws as settle, and TrustStoreError when the store cannot be written.
   */
  finish(): Promise<TrustAnchors>
}

/**
 * Opens a verified run of appends to `space`'s log at `url` (see the module comment).
 * @throws TrustStoreError (unreadable store), NoPublishedLogError, LogKeyChangedError,
 *   ServiceKeyChangedError, and whatever `get` throws.
 */
export async function openAppendVerification(o: AppendVerificationOptions): Promise<AppendVerification> {
  const get = o.get ?? ((u: URL) => fetch(u))
  const stored = o.stateDir !== undefined ? await loadTrust(o.stateDir, o.space) : o.stored
  const { anchors, notes } = await resolveTrust({ url: o.url, space: o.space, stored, explicit: o.explicit, needServiceDid: true, get, createLog: o.createLog })
  const verifier = new AppendVerifier({ trust: anchors, fetchFile: httpLogFiles(o.url, o.space, get), now: o.now })
  return {
    verifier,
    anchors,
    notes,
    async finish() {
      const settled = await verifier.settle()
      if (o.stateDir !== undefined) await saveTrust(o.stateDir, settled)
      return settled
    },
  }
}
