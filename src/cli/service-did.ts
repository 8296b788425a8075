/**
 * What every client command asks the service first: its DID (`GET <url>/did`, docs/wire.md), the
 * audience of every invocation. Also the client commands' shared options: the service URL and the
 * key and proof files, each with its environment variable (README "Client settings").
 */
import { Option } from 'commander'
import { ServiceRefusedError, UsageError, unreachable } from './exit-codes.js'

/** The service URL when neither `--url` nor `UCANLOG_URL` is given. */
export const DEFAULT_SERVICE_URL = 'http://127.0.0.1:8787'

/** Longest wait for `GET /did`, ms: a service that accepts but never answers is unreachable. */
export const SERVICE_DID_TIMEOUT_MS = 30_000

/** `--url <url>` with `UCANLOG_URL` and the local default. */
export function urlOption(): Option {
  return new Option('--url <url>', 'service base URL').env('UCANLOG_URL').default(DEFAULT_SERVICE_URL)
}

/**
 * The service DID from `GET <url>/did`.
 * @throws UsageError for a malformed URL; UnreachableError (exit 4) when the service cannot be reached; ServiceRefusedError (exit 2)
 *   for an HTTP error status or an answer that is not a did:key.
 */
export async function fetchServiceDID(url: string): Promise<`did:${string}:${string}`> {
  let target: URL
  try {
    target = new URL('/did', url)
  } catch {
    throw new UsageError(`--url / UCANLOG_URL is not a URL: ${JSON.stringify(url)}; e.g. ${DEFAULT_SERVICE_URL}`)
  }
  let res: Response
  try {
    res = await fetch(target, { signal: AbortSignal.timeout(SERVICE_DID_TIMEOUT_MS) })
  } catch (err) {
    throw unreachable(url, err)
  }
  if (!res.ok) throw new ServiceRefusedError(`GET ${url.replace(/\/$/, '')}/did answered HTTP ${res.status}; is ${url} a ucanlog service? (--url / UCANLOG_URL)`)
  const did = (await res.text()).trim()
  if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]+$/.test(did)) throw new ServiceRefusedError(`${url}/did is not a did:key: ${did.slice(0, 80)}; is ${url} a ucanlog service? (--url / UCANLOG_URL)`)
  return did as `did:${string}:${string}`
}
