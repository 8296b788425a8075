/**
 * `createClient`: one agent's connection to one ucanlog service for one space — append entries,
 * read them back, create the log, revoke a delegation (docs/client.md). Built on the invocation
 * builders of src/ucan/client.ts; every append run is verified by verify-session.ts (the same
 * verification `ucanlog append` runs), every other receipt's signature by verify-append.ts.
 */
import type { API } from '@ucanto/core'
import { MAX_ENTRY_SIZE, decodeBase64 } from '../tlog/index.js'
import { connect, createInvocation, delegateAgentToService, readInvocation, revokeInvocation } from '../ucan/client.js'
import { type AppendResult, type CreateResult, DEFAULT_MAX_BODY_BYTES, type RevokeResult } from '../ucan/wire.js'
import type { FailureJSON } from '../ucan/errors.js'
import { type EntryOutcome, appendBatch } from './append-batch.js'
import { parseDelegation } from './delegations.js'
import { AppendRefusedError, InvalidDelegationError, ServiceRefusedError, ServiceUnreachableError, UnexpectedAnswerError } from './errors.js'
import { fetchServiceDID, namedGet, unreachable } from './http.js'
import type { Key } from './keys.js'
import type { TrustAnchors } from './trust-store.js'
import { verifyServiceReceipt } from './verify-append.js'
import { ServiceKeyChangedError, VerificationFailedError } from './verify-errors.js'
import { Journal } from './journal.js'
import { openAppendVerification } from './verify-session.js'

/** What {@link createClient} needs. */
export interface ClientOptions {
  /** The service base URL, e.g. `http://127.0.0.1:8787` (invocations go to `POST <url>`). */
  url: string | URL
  /** The agent's key: it signs every invocation (`parseKey` of its key file, or `createKey()`). */
  agent: Key
  /**
   * The Space → Agent delegation (a parsed one, or its text as `ucanlog delegate` /
   * `storacha delegation create --base64` write it). Needed to append and create; without it the
   * client only reads (then give `space`).
   */
  proof?: API.Delegation | string
  /** The space whose log this is; default the `with` of the proof's first capability. */
  space?: `did:key:${string}`
  /** The service DID; default fetched from `GET <url>/did` (or the pinned one). Give it to pin it: every receipt must be signed by it. */
  serviceDID?: `did:key:${string}`
  /** Seconds each invocation is valid for (its `exp`); default 300 (an append with a `journal`: 3540, append-batch.ts `JOURNAL_INVOCATION_LIFETIME`), the service accepts at most 3600. */
  invocationLifetime?: number
  /**
   * Where the pins of this log are kept between runs: a trust-store directory, shared with
   * `ucanlog append` and `ucanlog audit` (theirs is `defaultStateDir()`: `$UCANLOG_STATE`, else
   * `~/.ucanlog/audit`). Default: none — the pins live in this client object ({@link UcanlogClient.trust}),
   * starting from `trust`.
   */
  stateDir?: string
  /** Pins kept by the app itself (a previous client's {@link UcanlogClient.trust}), when there is no `stateDir`. */
  trust?: TrustAnchors
  /** The log's verifier key (c2sp.org/signed-note vkey, `create()` returns it): wins over the pin and is pinned. */
  logVkey?: string
  /** The witness policy text (c2sp.org/tlog-policy) checkpoints must meet: wins over the pin and is pinned. */
  witnessPolicy?: string
  /** Called with each trust-on-first-use note (what was trusted because nothing was pinned or given), one line each. */
  onNote?: (note: string) => void
}

/**
 * Why one entry was not appended: `name` is stable, `message` says more (docs/client.md lists them).
 * - the service's refusal (a receipt error): `Unauthorized`, `Expired`, `Revoked`, `EntryTooLarge`,
 *   `RateLimited`, … (docs/wire.md);
 * - `HTTPError`: the service refused the HTTP request itself (`status`: 413, 429, 503 …);
 * - `ServiceUnreachable`: no answer came back after retries (the batch stopped there; the entry may
 *   or may not have been appended — with a `journal`, the same call again resumes exactly once);
 * - found before sending: `InvalidData` (0 bytes), `EntryTooLarge` (more than 65,535 bytes);
 * - `NotSent`: not tried, because an earlier entry failed and `stopOnError` was set.
 */
export interface EntryFailure extends FailureJSON {
  /** The HTTP status, for `HTTPError`. */
  status?: number
}

/**
 * What one entry of {@link UcanlogClient.append} came to, in the order given: `input` is its
 * position in the `entries` argument, `entry` its bytes, `status` what became of it:
 * - `appended`: appended by this call; `ok` is the verified wire result (docs/wire.md: `index`,
 *   `treeSize`, `checkpoint`, `inclusionProof`, `published` …), `index` its log index;
 * - `already-appended`: appended by an earlier call with the same `journal` (not sent again):
 *   `ok` is the result recorded then, or absent when the entry was found in the log by a lookup
 *   (its invocation had expired unanswered); `index` its log index either way;
 * - `failed`: `error` says why ({@link EntryFailure}).
 */
export type AppendOutcome =
  | { input: number; entry: Uint8Array; status: 'appended' | 'already-appended'; index: number; ok: AppendResult; error?: undefined }
  | { input: number; entry: Uint8Array; status: 'already-appended'; index: number; ok?: undefined; error?: undefined }
  | { input: number; entry: Uint8Array; status: 'failed'; index?: undefined; ok?: undefined; error: EntryFailure }

/** The options of {@link UcanlogClient.append}. */
export interface AppendOptions {
  /** Invocations in flight at once, 1..256; default 8. */
  concurrency?: number
  /** After the first entry that fails, send no more (the rest are `NotSent`); default false: every entry is tried. */
  stopOnError?: boolean
  /**
   * Exactly-once across calls (and crashes): the path of an append journal (journal.ts, the file
   * `ucanlog append --journal` writes). Each invocation is signed and recorded before it is sent,
   * each outcome as it comes; calling `append` again with the same journal and the same entries
   * resends the invocations whose answer never came (the service answers a repeat with the first
   * result) and sends nothing for entries whose outcome is recorded. One journal per list of entries.
   * Default: none (an entry whose answer was lost may be appended twice by a retry of the caller's).
   */
  journal?: string
  /** The service's request body limit in bytes (its `--max-body`), checked before sending; default {@link DEFAULT_MAX_BODY_BYTES}. */
  maxBodyBytes?: number
}

/** What {@link UcanlogClient.read} returns: the entries' bytes from `offset`, and the log's published size. */
export interface ReadEntries {
  /** Entries `offset`, `offset + 1`, …: possibly fewer than `limit` (the response budget), none past the published size. */
  entries: Uint8Array[]
  /** Entries in the published tree (`total` ≥ offset + entries.length), in entries. */
  total: number
}

/** The options of {@link UcanlogClient.revoke}. */
export interface RevokeOptions {
  /** Who signs the revocation; default the client's agent. Must be in the revoked delegation's chain. */
  issuer?: Key
  /** The revoking authority (`with`); default the issuer's DID. */
  scope?: `did:${string}:${string}`
  /** Delegations of `ucan/revoke` from `scope` to `issuer`, when they differ. */
  proofs?: API.Delegation[]
}

/** A client of one ucanlog service, for one agent and one space (see {@link createClient}). */
export interface UcanlogClient {
  /** The service base URL. */
  readonly url: string
  /** The service DID (given, or fetched from `/did` once). */
  readonly serviceDID: `did:key:${string}`
  /** The space (log id) this client appends to and reads. */
  readonly space: `did:key:${string}`
  /** The agent key signing the invocations. */
  readonly agent: Key
  /** The Agent → Service delegation every append carries in `nb.delegation` (made once, lasts as long as the proof); undefined without a proof. */
  readonly agentToService: API.Delegation | undefined
  /**
   * The pins of this log after the last append (service DID, origin, log key, witness policy, last
   * checkpoint verified); undefined before the first. Keep it (e.g. as JSON with `rootHash` in
   * base64) and pass it as `createClient({ trust })` next time, or use `stateDir`.
   */
  readonly trust: TrustAnchors | undefined
  /**
   * Appends each entry (bytes, 1..65,535 each) as its own signed `tlog/append` invocation, up to
   * `concurrency` at once, and resolves once every entry has an outcome — the same pipeline as
   * `ucanlog append` (append-batch.ts `appendBatch`; opt-in `journal` for exactly-once). A refusal
   * is that entry's `error` ({@link EntryFailure}) and the others go on unless `stopOnError`; a
   * service that stops answering stops the batch (the entries left are `ServiceUnreachable`).
   *
   * Every receipt is verified before `append` resolves, trusting nothing the service says (the
   * verification `ucanlog append` runs, verify-session.ts): signed by the pinned service DID and
   * answering its invocation; its checkpoint signed by the pinned log key under the pinned origin
   * and cosigned as the pinned witness policy requires; its inclusion proof; then every checkpoint
   * of the run consistent with the last one pinned and with the log's current one, and the pins
   * moved to it. The anchors come from the options, else `stateDir`/`trust`, else what the service
   * shows (trust on first use, reported to `onNote`); a space with no log yet gets one (`tlog/create`).
   * An `ok` with `published: false` (the witness quorum was not met in time; the entry is durable,
   * signed by the service, and a later checkpoint publishes it) has no checkpoint to verify yet.
   * @throws VerificationError (exit code 3; its `name` says which check: ReceiptSignatureInvalid,
   *   LogSignatureInvalid, CosignatureInvalid, WitnessPolicyNotMet, InclusionProofInvalid,
   *   InvalidReceipt, LogForked, LogRolledBack, SplitView, LogKeyChanged, ServiceKeyChanged, …)
   *   when the service's answers do not check out: no more entries are sent, and the call throws
   *   once those in flight have ended; the pins are not moved. Before anything is sent:
   *   ServiceUnreachableError, TrustStoreError, NoPublishedLogError (from resolving the anchors),
   *   InvalidDelegationError without a proof, TypeError when an entry is not a Uint8Array;
   *   JournalError / JournalMismatchError (the journal is unreadable, or for other entries, space or
   *   service); RequestTooLargeError (a request over `maxBodyBytes`; nothing more is sent).
   */
  append(entries: Uint8Array | readonly Uint8Array[], options?: AppendOptions): Promise<AppendOutcome[]>
  /**
   * Reads entries `offset`.. (at most `limit`) of the space's published log with a `tlog/read`
   * invocation (public: any key may read).
   * @param offset entry index ≥ 0 (default 0); @param limit 1..1000 entries (default 100).
   * @throws ServiceRefusedError (`UnknownLog`, `InvalidCapability`, `RateLimited`, `HTTPError` …); ServiceUnreachableError.
   */
  read(offset?: number, limit?: number): Promise<ReadEntries>
  /**
   * Creates the space's log now (idempotent; the first append creates it too), authorized like an
   * append: resolves to its origin and log key (`vkey`) — pin that key.
   * @throws ServiceRefusedError (`Unauthorized`, `Revoked`, `LogCreationLimited` …); ServiceUnreachableError; InvalidDelegationError without a proof.
   */
  create(): Promise<CreateResult>
  /**
   * Revokes `delegation` (`ucan/revoke`, Storacha's capability): from then on every invocation whose
   * chain holds it is `Revoked`. The issuer must be in its chain (its issuer, audience or upstream),
   * else the service refuses with `UnrelatedRevocation`.
   * @throws ServiceRefusedError (`UnrelatedRevocation`, `TooManyRevocations` …); ServiceUnreachableError.
   */
  revoke(delegation: API.Delegation | string, options?: RevokeOptions): Promise<RevokeResult>
}

/**
 * Connects an agent to a ucanlog service for one space: fetches the service DID from `/did` unless
 * given, checks the proof is delegated to this agent, and makes the Agent → Service delegation the
 * appends carry. Nothing is sent to the RPC endpoint until a method is called.
 * @throws InvalidDelegationError when the proof does not parse, is delegated to another agent, or
 *   names no space; TypeError when neither `proof` nor `space` is given; ServiceUnreachableError,
 *   ServiceRefusedError, UnexpectedAnswerError from fetching `/did`.
 */
export async function createClient(options: ClientOptions): Promise<UcanlogClient> {
  const url = String(options.url)
  const agent = options.agent
  const proof = typeof options.proof === 'string' ? await parseDelegation(options.proof) : options.proof
  if (proof !== undefined && proof.audience.did() !== agent.did()) {
    throw new InvalidDelegationError(`the proof is delegated to ${proof.audience.did()}, not to this agent (${agent.did()}); delegate to it with: ucanlog delegate --space-key SPACE.key --agent ${agent.did()}`)
  }
  const space = options.space ?? spaceOf(proof)
  const serviceDID = options.serviceDID ?? (await fetchServiceDID(url))
  const lifetime = options.invocationLifetime
  const connection = connect(url, serviceDID)
  const agentToService = proof && (await delegateAgentToService({ agent, service: serviceDID, proofs: [proof], space, expiration: proof.expiration }))
  const needProof = (): API.Delegation => {
    if (agentToService === undefined) throw new InvalidDelegationError('this client has no proof: pass createClient({ proof }) (the Space → Agent delegation) to append or create')
    return agentToService
  }

  /** Sends one invocation; network and HTTP failures become named errors. Returns the receipt, its `out` and the invocation's link. */
  const exchange = async <O>(invocation: API.IssuedInvocationView): Promise<{ receipt: API.Receipt; out: { ok?: O; error?: FailureJSON }; link: API.Link }> => {
    const link = (await invocation.delegate()).cid
    let receipts: unknown
    try {
      receipts = await connection.execute(invocation as never)
    } catch (err) {
      const status = (err as { status?: unknown }).status
      if ((err as Error).name === 'HTTPError' && typeof status === 'number') {
        throw new ServiceRefusedError({ name: 'HTTPError', message: `POST ${url} answered HTTP ${status}` }, status)
      }
      // undici's fetch fails with a TypeError('fetch failed') whose cause says why (ECONNREFUSED, …).
      if (err instanceof TypeError && err.message === 'fetch failed') throw unreachable(url, err)
      throw new UnexpectedAnswerError(`${url} answered something that is not a ucanto receipt (${(err as Error).message}); is it a ucanlog service?`)
    }
    const receipt = Array.isArray(receipts) ? receipts[0] : receipts
    const out = (receipt as { out?: { ok?: O; error?: FailureJSON } } | undefined)?.out
    if (out === undefined || (out.ok === undefined && out.error === undefined)) throw new UnexpectedAnswerError(`${url} answered no receipt for the invocation`)
    return { receipt: receipt as API.Receipt, out, link }
  }
  /** {@link exchange}, the receipt's signature checked against the service DID (ReceiptSignatureInvalid, ReceiptMismatch otherwise). */
  const send = async <O>(invocation: API.IssuedInvocationView): Promise<{ ok?: O; error?: FailureJSON }> => {
    const { receipt, out, link } = await exchange<O>(invocation)
    await verifyServiceReceipt(receipt, serviceDID, link)
    return out
  }
  let trust: TrustAnchors | undefined = options.trust
  const get = namedGet(url)
  const okOrThrow = <O>(out: { ok?: O; error?: FailureJSON }): O => {
    if (out.error !== undefined) throw new ServiceRefusedError({ name: String(out.error.name), message: String(out.error.message) })
    return out.ok as O
  }

  return {
    url,
    serviceDID,
    space,
    agent,
    agentToService,
    get trust() {
      return trust
    },

    async append(entries, appendOptions = {}) {
      const list: readonly Uint8Array[] = entries instanceof Uint8Array ? [entries] : entries
      for (const [i, e] of list.entries()) if (!(e instanceof Uint8Array)) throw new TypeError(`entry ${i} is not a Uint8Array: entries are bytes (encode text with new TextEncoder().encode(s))`)
      const delegation = needProof()
      const run = await openAppendVerification({
        url,
        space,
        ...(options.stateDir !== undefined ? { stateDir: options.stateDir } : { stored: trust }),
        explicit: {
          ...(options.serviceDID !== undefined && { serviceDid: options.serviceDID }),
          ...(options.logVkey !== undefined && { logVkey: options.logVkey }),
          ...(options.witnessPolicy !== undefined && { policy: options.witnessPolicy }),
        },
        get,
        // A space with no published checkpoint yet: create its log, its receipt checked.
        createLog: async () => okOrThrow<CreateResult>(await send(await createInvocation({ agent, service: serviceDID, space, agentToService: delegation, lifetime }))),
      })
      for (const note of run.notes) options.onNote?.(note)
      if (run.anchors.serviceDid !== serviceDID) {
        throw new ServiceKeyChangedError(`this client addresses ${serviceDID}, but the service DID pinned for ${space} is ${run.anchors.serviceDid}; create the client with serviceDID, or check the URL`)
      }
      const concurrency = Math.min(256, Math.max(1, Math.floor(appendOptions.concurrency ?? 8)))
      const outcomes: AppendOutcome[] = new Array(list.length)
      // Entries refused locally are not sent (nor journaled): the batch gets the others, numbered 0.. in order.
      const sent: number[] = []
      for (const [input, entry] of list.entries()) {
        const local = localRefusal(entry)
        if (local === undefined) sent.push(input)
        else outcomes[input] = { input, entry, status: 'failed', error: local }
      }
      const firstLocal = outcomes.findIndex((o) => o !== undefined)
      const batch = appendOptions.stopOnError && firstLocal >= 0 ? sent.filter((input) => input < firstLocal) : sent
      const journal = appendOptions.journal === undefined ? undefined : await Journal.open(appendOptions.journal)
      let stopped: Error | undefined
      try {
        await appendBatch(
          batch.map((input, position) => ({ position, line: input + 1, bytes: list[input]! })),
          {
            connection,
            agent,
            service: serviceDID,
            space,
            agentToService: delegation,
            journal,
            concurrency,
            failFast: appendOptions.stopOnError,
            maxBodyBytes: appendOptions.maxBodyBytes,
            lifetime,
            verifier: run.verifier,
            onOutcome: (out) => {
              const input = batch[out.position]!
              outcomes[input] = toOutcome(input, list[input]!, out)
            },
          },
        )
      } catch (err) {
        stopped = err as Error
      } finally {
        await journal?.close()
      }
      // A receipt that does not check out: the check's own named error; the pins do not move.
      if (stopped instanceof VerificationFailedError) throw stopped.cause ?? stopped
      if (stopped !== undefined && !(stopped instanceof AppendRefusedError || stopped instanceof ServiceUnreachableError)) throw stopped
      // Consistency of the run's checkpoints with the pin and the log's current one; then the pins move.
      trust = await run.finish()
      const left: EntryFailure =
        stopped instanceof ServiceUnreachableError
          ? { name: stopped.name, message: `${stopped.message}: the batch stopped; this entry may or may not be appended${journal ? ' (call append again with the same journal to resume exactly once)' : ''}` }
          : { name: 'NotSent', message: 'not sent: an earlier entry failed and stopOnError is set' }
      for (let input = 0; input < list.length; input++) outcomes[input] ??= { input, entry: list[input]!, status: 'failed', error: left }
      return outcomes
    },

    async read(offset = 0, limit = 100) {
      const out = okOrThrow<{ entries: string[]; total: number }>(await send(readInvocation({ issuer: agent, service: serviceDID, space, offset, limit, lifetime })))
      if (!Array.isArray(out?.entries) || typeof out.total !== 'number') throw new UnexpectedAnswerError(`${url} answered tlog/read without entries and total`)
      return { entries: out.entries.map(decodeBase64), total: out.total }
    },

    async create() {
      return okOrThrow<CreateResult>(await send(await createInvocation({ agent, service: serviceDID, space, agentToService: needProof(), lifetime })))
    },

    async revoke(delegation, revokeOptions = {}) {
      const ucan = typeof delegation === 'string' ? await parseDelegation(delegation) : delegation
      const invocation = revokeInvocation({
        issuer: revokeOptions.issuer ?? agent,
        service: serviceDID,
        ucan,
        ...(revokeOptions.scope !== undefined && { scope: revokeOptions.scope }),
        ...(revokeOptions.proofs !== undefined && { proofs: revokeOptions.proofs }),
        lifetime,
      })
      return okOrThrow<RevokeResult>(await send(invocation))
    },
  }
}

/** An outcome of append-batch.ts as {@link AppendOutcome}: `input` the entry's position in the call's `entries`. */
function toOutcome(input: number, entry: Uint8Array, out: EntryOutcome): AppendOutcome {
  if (out.status === 'refused') return { input, entry, status: 'failed', error: out.error! }
  const index = out.index ?? out.result!.index
  return out.result ? { input, entry, status: out.status, index, ok: out.result } : { input, entry, status: 'already-appended', index }
}

/** The refusal the service would answer for an entry of 0 or more than {@link MAX_ENTRY_SIZE} bytes, found before sending it. */
function localRefusal(entry: Uint8Array): EntryFailure | undefined {
  if (entry.byteLength === 0) return { name: 'InvalidData', message: 'an entry is 1..65535 bytes; this one is empty (not sent)' }
  if (entry.byteLength > MAX_ENTRY_SIZE) return { name: 'EntryTooLarge', message: `an entry is at most ${MAX_ENTRY_SIZE} bytes; this one is ${entry.byteLength} (not sent)` }
  return undefined
}

/** The space a Space → Agent proof is about: the `with` of its first capability. */
function spaceOf(proof: API.Delegation | undefined): `did:key:${string}` {
  if (proof === undefined) throw new TypeError('createClient needs proof (the Space → Agent delegation) or space')
  const resource = proof.capabilities[0]?.with
  if (typeof resource !== 'string' || !resource.startsWith('did:key:')) throw new InvalidDelegationError('the proof names no space: its first capability is not on a did:key')
  return resource as `did:key:${string}`
}
