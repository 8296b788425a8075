/**
 * Any instance accepts any append (issue 14 item 2; docs/storage.md, PostgreSQL: several
 * instances). An RPC request whose invocations are all `tlog/append` to one log — or all
 * `ucan/revoke`, which append to the one revocation log (`revocationLog`) — that another live
 * instance holds (its lease row names it and its internal URL) is sent on to that instance as is
 * — the same signed bytes, which the holder verifies in full — and its answer returned unchanged.
 * Otherwise this instance takes the log itself (opening it takes its lease: it waits for a dead or
 * paused holder's lease to expire) and runs the request; if another instance took the lease
 * meanwhile (`LeaseHeld`), it looks again and forwards. While this instance is still taking a log
 * (two instances raced for it and the other won), the requests waiting on it and those arriving
 * meanwhile look for the holder every {@link WATCH_MS} and are forwarded to it as soon as it is
 * there, rather than waiting until that holder lets the log go and then taking it back (which
 * had the two instances pass the lease back and forth under load, each waiting for the other's
 * idle release). The holder keeps a log while it is used (leases follow use: LogManager
 * idleCloseMs), so under load one instance integrates each log and the others forward to it: no
 * lease ping-pong.
 *
 * - A forwarded request carries `x-ucanlog-forwarded-for` (the client's address) and
 *   `x-ucanlog-forward-mac`, an HMAC-SHA256 of that address and the body's SHA-256 under a key
 *   derived from the service key every instance shares. The receiver trusts the address only with
 *   a valid MAC (then the client's rate limits apply to the client, not to the forwarding
 *   instance), and a request with a valid MAC is never forwarded again.
 * - A holder that cannot be reached (connection refused: it died) is treated as gone: this
 *   instance takes the log once its lease has expired. A holder that accepted the request but did
 *   not answer within `timeoutMs` (paused) gets the client 503 `LeaseHolderUnresponsive` with
 *   Retry-After: whether it ran is unknown; the fencing token refuses its writes once another
 *   instance has taken the log, and the shared replay guard refuses a second run.
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import * as CAR from '@ucanto/transport/car'
import type { API } from '@ucanto/core'
import type { RpcHandler } from './app.js'

/** Header naming the client address of a forwarded request. */
export const FORWARDED_FOR = 'x-ucanlog-forwarded-for'
/** Header carrying the forwarded request's MAC (hex). */
export const FORWARD_MAC = 'x-ucanlog-forward-mac'
/** While this instance is taking a log, how often, ms, a request waiting on it looks for another holder to forward to (one indexed read). */
export const WATCH_MS = 100

/** What {@link forwardingRpc} needs. */
export interface ForwardOptions {
  /** The RPC handler that runs requests here. */
  rpc: RpcHandler
  /** 32+ bytes every instance of the service shares (the service key's seed); the MAC key is derived from it. */
  secret: Uint8Array
  /**
   * The lease id of the revocation log (`service:revocations`): a request whose invocations are all
   * `ucan/revoke` goes to its holder as appends go to theirs, so one instance writes it at a time
   * and every other forwards instead of waiting for its lease. Absent: revocations run where they arrive.
   */
  revocationLog?: string
  /** Another live instance holding log `id`'s lease (with its internal URL), or undefined. */
  otherHolder(id: string): Promise<{ holder: string; url: string | undefined } | undefined>
  /** True when log `id` is open here (this instance holds it or is taking it; while it is taking it through `hold`, the holder is looked for anyway). */
  openHere(id: string): boolean
  /**
   * Takes log `id` here and holds it open until the returned release is called; undefined when no
   * such log exists. Rejects LeaseHeld when another instance holds it past the wait.
   */
  hold(id: string): Promise<(() => void) | undefined>
  /** Longest wait for a forwarded request's answer, ms, ≥ 1. */
  timeoutMs: number
  /** Told of every forward, by result (`ok`, `unreachable`, `timeout`); must not throw. */
  onForward?(result: 'ok' | 'unreachable' | 'timeout'): void
  /** The fetch used to forward (tests inject faults); default the global one. */
  fetch?: typeof fetch
}

type RpcRequest = Parameters<RpcHandler['request']>[0]
type RpcResponse = Awaited<ReturnType<RpcHandler['request']>>

/** The MAC key of forwarded requests, derived from the shared secret (HKDF-SHA256). */
function macKey(secret: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, new Uint8Array(0), 'ucanlog forward v1', 32))
}

/** The MAC of a forwarded request: HMAC-SHA256(key, client ‖ 0x0a ‖ SHA-256(body)), hex. */
function mac(key: Buffer, client: string, body: Uint8Array): string {
  return createHmac('sha256', key).update(client).update('\n').update(createHash('sha256').update(body).digest()).digest('hex')
}

/**
 * The one log every invocation of the request appends to: the space of `tlog/append`s to one log,
 * or `revocationLog` for `ucan/revoke`s (when given); undefined for anything else (another ability,
 * several logs, a mix, or a body that does not decode: run here).
 */
async function appendTarget(req: RpcRequest, revocationLog: string | undefined): Promise<string | undefined> {
  try {
    const selection = CAR.inbound.accept(req as never)
    if (selection.error) return undefined
    const message = (await selection.ok.decoder.decode(req as never)) as API.AgentMessage
    let target: string | undefined
    for (const inv of message.invocations as API.Invocation[]) {
      const cap = inv.capabilities[0]
      if (inv.capabilities.length !== 1 || cap === undefined) return undefined
      const log = cap.can === 'tlog/append' ? cap.with : cap.can === 'ucan/revoke' ? revocationLog : undefined
      if (log === undefined || (target !== undefined && log !== target)) return undefined
      target = log
    }
    return target
  } catch {
    return undefined
  }
}

/** `o.rpc`, forwarding appends to the instance holding their log; see the module comment. */
export function forwardingRpc(o: ForwardOptions): RpcHandler {
  if (o.secret.length < 32) throw new RangeError('the forwarding secret must be at least 32 bytes')
  if (!Number.isSafeInteger(o.timeoutMs) || o.timeoutMs < 1) throw new RangeError('timeoutMs must be an integer ≥ 1')
  const key = macKey(o.secret)
  const doFetch = o.fetch ?? fetch

  /** The client address a valid MAC vouches for, else undefined. */
  const vouched = (req: RpcRequest): string | undefined => {
    const client = req.headers[FORWARDED_FOR]
    const given = req.headers[FORWARD_MAC]
    if (client === undefined || given === undefined || !/^[0-9a-f]{64}$/.test(given)) return undefined
    const want = Buffer.from(mac(key, client, req.body), 'hex')
    return timingSafeEqual(want, Buffer.from(given, 'hex')) ? client : undefined
  }

  const forward = async (url: string, req: RpcRequest): Promise<RpcResponse | 'unreachable'> => {
    const client = req.client ?? ''
    const headers: Record<string, string> = { [FORWARDED_FOR]: client, [FORWARD_MAC]: mac(key, client, req.body) }
    for (const h of ['content-type', 'accept']) if (req.headers[h] !== undefined) headers[h] = req.headers[h]!
    let res: Response
    try {
      res = await doFetch(`${url}/rpc`, { method: 'POST', headers, body: req.body, signal: AbortSignal.timeout(o.timeoutMs) })
    } catch (err) {
      if ((err as Error | undefined)?.name === 'TimeoutError') {
        o.onForward?.('timeout')
        return { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' }, body: new TextEncoder().encode('LeaseHolderUnresponsive: the instance writing this log did not answer; retry later\n') }
      }
      o.onForward?.('unreachable')
      return 'unreachable'
    }
    const body = new Uint8Array(await res.arrayBuffer())
    const out: Record<string, string> = {}
    for (const h of ['content-type', 'retry-after']) {
      const v = res.headers.get(h)
      if (v !== null) out[h] = v
    }
    o.onForward?.('ok')
    return { status: res.status, headers: out, body }
  }

  /** Logs this instance is taking through `hold` now (until each hold settles), with how many holds are pending on each. */
  const taking = new Map<string, number>()

  /**
   * `o.hold(space)`, or — when another live instance turns out to hold the log while this one
   * waits for it (`watch`) — that holder's URL; the hold then goes on alone and is let go when done
   * (until then, requests for the log look for the holder first: {@link taking}).
   */
  const holdOrFind = async (space: string, watch: boolean): Promise<{ release: (() => void) | undefined } | { url: string }> => {
    taking.set(space, (taking.get(space) ?? 0) + 1)
    const held = o.hold(space)
    const done = (): void => {
      const n = taking.get(space)! - 1
      if (n === 0) taking.delete(space)
      else taking.set(space, n)
    }
    held.then(done, done)
    let settled = false
    try {
      if (!watch) return { release: await held }
      const found = (async (): Promise<{ url: string } | undefined> => {
        while (!settled) {
          await new Promise((ok) => setTimeout(ok, WATCH_MS))
          if (settled) return undefined
          const other = await o.otherHolder(space).catch(() => undefined)
          if (other?.url !== undefined) return { url: other.url }
        }
        return undefined
      })()
      // `found` ends undefined only once `held` has settled, which has then won the race.
      const first = await Promise.race([held.then((release) => ({ release })), found.then((f) => f ?? new Promise<never>(() => {}))])
      if ('url' in first) held.then((release) => release?.(), () => {}) // not ours to use: let it go once taken
      return first
    } finally {
      settled = true
    }
  }

  return {
    async request(req) {
      const client = vouched(req)
      // Forwarded by another instance: run here, as the client's, and never forward again.
      if (client !== undefined) return o.rpc.request({ ...req, client })
      const log = await appendTarget(req, o.revocationLog)
      if (log === undefined) return o.rpc.request(req)
      let unreachable = false
      // Twice at most: a holder found, or found after LeaseHeld; then the request runs here.
      for (let round = 0; round < 2; round++) {
        if (!o.openHere(log) || taking.has(log)) {
          const other = await o.otherHolder(log)
          if (other?.url !== undefined) {
            const r = await forward(other.url, req)
            if (r !== 'unreachable') return r
            unreachable = true
          }
        }
        let release: (() => void) | undefined
        try {
          // A holder that could not be reached is dead: wait for its lease to expire, do not look again.
          const got = await holdOrFind(log, !unreachable)
          if ('url' in got) {
            const r = await forward(got.url, req)
            if (r !== 'unreachable') return r
            unreachable = true
            release = await o.hold(log)
          } else release = got.release
        } catch (err) {
          if ((err as Error | undefined)?.name === 'LeaseHeld' && round === 0) continue
          break // the handler meets the same refusal and answers it by name
        }
        try {
          return await o.rpc.request(req)
        } finally {
          release?.()
        }
      }
      return o.rpc.request(req)
    },
  }
}
