/**
 * The witness's HTTP surface, as litewitness serves it:
 * - `POST /add-checkpoint` (c2sp.org/tlog-witness v1): a thin adapter over Witness.addCheckpoint;
 *   other methods on that path get 405.
 * - `GET /`: a small HTML status page with the witness name, vkey and each log's size and root.
 * - `GET /metrics`: Prometheus text format (prom-client): add-checkpoint requests by status and
 *   cosignatures issued.
 * A store error is 500 with no detail, or 503 + Retry-After when the host says it is passing
 * (`unavailable`: the PostgreSQL state unreachable).
 * Mount it under the submission prefix (e.g. `app.route('/witness', witnessApp(w))`).
 */
import { Hono } from 'hono'
import { Counter, Registry } from 'prom-client'
import { MAX_ADD_CHECKPOINT_BODY } from './witness.js'
import type { Witness, WitnessResponse } from './witness.js'
import { encodeBase64 } from '../src/tlog/encoding.js'

/** Options for {@link witnessApp}. */
export interface WitnessAppOptions {
  /** Serve the HTML status page at `GET /`. Default true. */
  statusPage?: boolean
  /**
   * Where the witness's counters are registered (default: a new Registry of their own). Pass the
   * host's registry to expose them with its other metrics. Registering twice in one registry reuses
   * the counters.
   */
  registry?: Registry
  /** Serve `registry` at `GET /metrics`. Default true. */
  metricsPage?: boolean
  /**
   * For a store error (add-checkpoint and the status page), the seconds to put in Retry-After when
   * it means the state cannot be reached for now (e.g. PostgreSQL's DatabaseUnavailable): answered
   * 503 `DatabaseUnavailable` instead of 500. Undefined (the default for every error): 500.
   */
  unavailable?: (err: unknown) => number | undefined
}

/** Name of the counter of add-checkpoint requests, labelled by HTTP `status` (e.g. "200", "409"). */
export const REQUESTS_METRIC = 'ucanlog_witness_add_checkpoint_requests_total'
/** Name of the counter of cosignatures issued (one per 200 answer and cosigning key). */
export const COSIGNATURES_METRIC = 'ucanlog_witness_cosignatures_total'

/** Builds the witness's Hono app. */
export function witnessApp(witness: Witness, opts: WitnessAppOptions = {}): Hono {
  const app = new Hono()
  const registry = opts.registry ?? new Registry()
  const requests = counter(registry, REQUESTS_METRIC, 'tlog-witness add-checkpoint requests by HTTP status', ['status'])
  const cosignatures = counter(registry, COSIGNATURES_METRIC, 'cosignatures issued (c2sp.org/tlog-cosignature)', [])

  app.all('/add-checkpoint', async (c) => {
    if (c.req.method !== 'POST') {
      requests.inc({ status: '405' })
      return new Response('method not allowed\n', { status: 405, headers: { Allow: 'POST', 'Content-Type': 'text/plain; charset=utf-8' } })
    }
    let result: WitnessResponse & { retryAfter?: number }
    try {
      // Read at most one byte past the limit; the core answers 413 for anything longer.
      result = await witness.addCheckpoint(await readAtMost(c.req.raw, MAX_ADD_CHECKPOINT_BODY + 1))
    } catch (err) {
      result = failure(err)
    }
    requests.inc({ status: String(result.status) })
    if (result.status === 200) cosignatures.inc(result.body.split('\n').length - 1)
    return toResponse(result)
  })

  /** A store error's answer: 503 + Retry-After when `opts.unavailable` says it is passing, else 500 (no detail either way). */
  const failure = (err: unknown): WitnessResponse & { retryAfter?: number } => {
    const retryAfter = opts.unavailable?.(err)
    if (retryAfter === undefined) return { status: 500, contentType: 'text/plain; charset=utf-8', body: 'internal error\n' }
    return { status: 503, contentType: 'text/plain; charset=utf-8', body: 'DatabaseUnavailable: the witness state cannot be reached; retry later\n', retryAfter }
  }

  if (opts.statusPage ?? true) {
    app.get('/', async (c) => {
      let logs
      try {
        logs = await witness.logs()
      } catch (err) {
        return toResponse(failure(err))
      }
      return c.html(statusPage(witness.name, witness.vkey, logs))
    })
  }
  if (opts.metricsPage ?? true) {
    app.get('/metrics', async (c) => c.text(await registry.metrics(), 200, { 'Content-Type': registry.contentType }))
  }
  return app
}

/** A counter in `registry`, reusing one already registered under `name`. */
function counter(registry: Registry, name: string, help: string, labelNames: string[]): Counter {
  const existing = registry.getSingleMetric(name)
  if (existing instanceof Counter) return existing
  return new Counter({ name, help, labelNames, registers: [registry] })
}

/** The one mapping from a witness result to HTTP. */
function toResponse(r: WitnessResponse & { retryAfter?: number }): Response {
  const headers: Record<string, string> = { 'X-Content-Type-Options': 'nosniff' }
  if (r.contentType !== undefined) headers['Content-Type'] = r.contentType
  if (r.retryAfter !== undefined) headers['Retry-After'] = String(r.retryAfter)
  return new Response(r.body, { status: r.status, headers })
}

/** Reads a request body, stopping (and cancelling the stream) once `limit` bytes have arrived. */
async function readAtMost(req: Request, limit: number): Promise<Uint8Array> {
  if (req.body === null) return new Uint8Array(0)
  const reader = req.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    while (total < limit) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      total += value.length
    }
  } finally {
    if (total >= limit) await reader.cancel().catch(() => {})
    reader.releaseLock()
  }
  const out = new Uint8Array(Math.min(total, limit))
  let off = 0
  for (const ch of chunks) {
    const n = Math.min(ch.length, out.length - off)
    out.set(ch.subarray(0, n), off)
    off += n
    if (off === out.length) break
  }
  return out
}

function statusPage(name: string, vkey: string, logs: Awaited<ReturnType<Witness['logs']>>): string {
  const rows = logs
    .map(
      (l) =>
        `<tr><td><code>${esc(l.origin)}</code></td><td>${l.treeSize}</td><td><code>${esc(encodeBase64(l.rootHash))}</code></td>` +
        `<td>${l.keys.length === 0 ? 'disabled' : l.keys.map((k) => `<code>${esc(k)}</code>`).join('<br>')}</td></tr>`,
    )
    .join('\n')
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(name)}</title></head>
<body>
<h1>${esc(name)}</h1>
<p>A <a href="https://c2sp.org/tlog-witness">c2sp.org/tlog-witness</a> witness. Submit checkpoints with <code>POST add-checkpoint</code>.</p>
<p>Verifier key (cosignature/v1): <code>${esc(vkey)}</code></p>
<table>
<tr><th>Origin</th><th>Size</th><th>Root hash</th><th>Log keys</th></tr>
${rows}
</table>
</body>
</html>
`
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}
