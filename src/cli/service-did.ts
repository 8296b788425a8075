/**
 * What every client command asks the service first: its DID (`GET <url>/did`, docs/wire.md), the
 * audience of every invocation — through the client library's {@link clientFetchServiceDID}, with
 * the CLI's message for an unreachable service. Also the shared `--url` option (`UCANLOG_URL`).
 */
import { Option } from 'commander'
import { type Fetch, fetchServiceDID as clientFetchServiceDID } from '../client/http.js'
import { UsageError, unreachable } from './exit-codes.js'

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
 * @throws UsageError for a malformed URL; ServiceUnreachableError (exit 4) naming the URL, the cause and
 *   `--url` / `UCANLOG_URL` when the service cannot be reached (or does not answer within
 *   {@link SERVICE_DID_TIMEOUT_MS}); the client's ServiceRefusedError (`HTTPError`, exit 2) for an
 *   HTTP error status and UnexpectedAnswerError (exit 2) for an answer that is not a did:key.
 */
export async function fetchServiceDID(url: string): Promise<`did:key:${string}`> {
  try {
    new URL('/did', url)
  } catch {
    throw new UsageError(`--url / UCANLOG_URL is not a URL: ${JSON.stringify(url)}; e.g. ${DEFAULT_SERVICE_URL}`)
  }
  // Named here, with the CLI's next step; the client keeps an error already named ServiceUnreachable.
  const fetchImpl: Fetch = (input, init) =>
    fetch(input, { ...init, signal: AbortSignal.timeout(SERVICE_DID_TIMEOUT_MS) }).catch((err: unknown) => {
      throw unreachable(url, err)
    })
  return clientFetchServiceDID(url, fetchImpl)
}
