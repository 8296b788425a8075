/**
 * The fetch the log's witness client uses: a request under the bundled witness's submission prefix
 * is handed to the witness's HTTP handler in-process — the same c2sp.org/tlog-witness
 * add-checkpoint request and response bytes, without a socket, a port or the listener's connection
 * caps — and a request to any other witness goes over HTTP. The bundled witness is still served
 * over HTTP at `/witness` for everyone else (docs/architecture.md, life of an append).
 */

/** An HTTP handler over the Fetch API's Request/Response, as a Hono app's `fetch`. */
export type FetchHandler = (req: Request) => Response | Promise<Response>

/**
 * A `fetch` for {@link import('../log/witness-client.js').WitnessClient}: URLs under `prefix` (the
 * bundled witness's submission prefix, e.g. `http://127.0.0.1:8787/witness`) go to `handler` with
 * the prefix stripped (`…/witness/add-checkpoint` → `/add-checkpoint`), everything else to `network`.
 * URLs are compared in their parsed form, as the witness client normalizes them (host case, trailing `/`).
 */
export function witnessFetch(prefix: string, handler: FetchHandler, network: typeof fetch = globalThis.fetch): typeof fetch {
  const base = new URL(prefix.endsWith('/') ? prefix : `${prefix}/`).href
  return async (input, init) => {
    const url = input instanceof Request ? input.url : new URL(input).href
    if (!url.startsWith(base)) return network(input, init)
    return handler(new Request(new URL(`/${url.slice(base.length)}`, 'http://bundled-witness'), input instanceof Request ? input : init))
  }
}
