/**
 * Resolves the listener's bounds from the config and the descriptor budget, once at start:
 * derives the connection caps the user left at 0 and refuses caps the open-file limit cannot hold.
 */
import { ConfigError, type ServiceConfig } from './config.js'
import { type FdBudget, type FdLimit, type FdReserve, fdBudget } from './fd-budget.js'
import { DEFAULT_MAX_CONNECTIONS_CEILING, type ListenerLimits } from './listener.js'

/** Fewest connections worth serving: a budget leaving less than this is a start-up error. */
const MIN_CONNECTIONS = 8

/**
 * The listener's limits for `c`:
 * - `maxConnections` 0 → the descriptor budget's connections, at most {@link DEFAULT_MAX_CONNECTIONS_CEILING}
 *   (the ceiling alone when the limit is unknown);
 * - `maxConnectionsPerClient` 0 → a quarter of `maxConnections` (at least 1): one address can
 *   take no more than a quarter of the slots.
 * @param limit the open-file limit, or undefined when it cannot be read (then nothing is checked).
 * @param reserve descriptors the service keeps for itself.
 * @throws ConfigError naming the knobs when `maxConnections` plus the reserve exceeds the limit, when the
 *   budget leaves fewer than 8 connections, when the per-client cap exceeds the total, when
 *   `headersTimeoutMs` > `requestTimeoutMs`, or when `idleTimeoutMs` ≤ `batchMaxAgeMs + witnessTimeoutMs`
 *   (an append may wait that long with no bytes moving).
 */
export function connectionLimits(c: ServiceConfig, limit: FdLimit | undefined, reserve: FdReserve): ListenerLimits & { budget: FdBudget | undefined } {
  const budget = limit ? fdBudget(limit.soft, reserve) : undefined
  let maxConnections = c.maxConnections
  if (budget) {
    const what = `the open-file limit of ${budget.limit} (RLIMIT_NOFILE, from ${limit!.source}) minus ${budget.reserved} descriptors kept in reserve for logs, databases, files and outbound connections`
    if (maxConnections > budget.connections) {
      throw new ConfigError(
        `--max-connections / UCANLOG_MAX_CONNECTIONS is ${maxConnections}, more than ${what} leaves (${budget.connections}): ` +
          `raise the limit (ulimit -n ${maxConnections + budget.reserved} or more) or lower --max-connections to at most ${budget.connections}`,
      )
    }
    if (maxConnections === 0 && budget.connections < MIN_CONNECTIONS) {
      throw new ConfigError(
        `${what} leaves ${budget.connections} connections (fewer than ${MIN_CONNECTIONS}): raise the limit (ulimit -n ${budget.reserved + 64} or more)` +
          (budget.connections > 0 ? ` or set --max-connections / UCANLOG_MAX_CONNECTIONS to at most ${budget.connections} to serve that few` : ''),
      )
    }
  }
  if (maxConnections === 0) maxConnections = Math.min(budget?.connections ?? Infinity, DEFAULT_MAX_CONNECTIONS_CEILING)
  let maxConnectionsPerClient = c.maxConnectionsPerClient
  if (maxConnectionsPerClient > maxConnections) {
    throw new ConfigError(
      `--max-connections-per-client / UCANLOG_MAX_CONNECTIONS_PER_CLIENT is ${maxConnectionsPerClient}, more than the ${maxConnections} connections in total (--max-connections / UCANLOG_MAX_CONNECTIONS)`,
    )
  }
  if (maxConnectionsPerClient === 0) maxConnectionsPerClient = Math.max(1, Math.floor(maxConnections / 4))
  if (c.headersTimeoutMs > c.requestTimeoutMs) {
    throw new ConfigError(`--headers-timeout / UCANLOG_HEADERS_TIMEOUT_MS (${c.headersTimeoutMs} ms) must not exceed --request-timeout / UCANLOG_REQUEST_TIMEOUT_MS (${c.requestTimeoutMs} ms)`)
  }
  if (c.idleTimeoutMs <= c.batchMaxAgeMs + c.witnessTimeoutMs) {
    throw new ConfigError(
      `--idle-timeout / UCANLOG_IDLE_TIMEOUT_MS (${c.idleTimeoutMs} ms) must exceed --batch-max-age + --witness-timeout (${c.batchMaxAgeMs + c.witnessTimeoutMs} ms): an append waits that long for its checkpoint`,
    )
  }
  return {
    budget,
    maxConnections,
    maxConnectionsPerClient,
    headersTimeoutMs: c.headersTimeoutMs,
    requestTimeoutMs: c.requestTimeoutMs,
    keepAliveTimeoutMs: c.keepAliveTimeoutMs,
    idleTimeoutMs: c.idleTimeoutMs,
  }
}
