/** The descriptor budget arithmetic, the connection caps derived from it, and the client key of an address. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ConfigError, DEFAULT_CONFIG, type ServiceConfig } from '../../src/server/config.js'
import { connectionLimits } from '../../src/server/connection-limits.js'
import { DEFAULT_RESERVED_LOGS, defaultFdReserve, fdBudget, readFdLimit } from '../../src/server/fd-budget.js'
import { FDS_PER_OPEN_LOG } from '../../src/log/log-manager.js'

const cfg = (over: Partial<ServiceConfig> = {}): ServiceConfig => ({ ...DEFAULT_CONFIG, ...over })
const limit = (soft: number) => ({ soft, source: 'test' })

describe('fdBudget', () => {
  it('leaves the limit minus the reserve for connections, never below 0', () => {
    const reserve = defaultFdReserve()
    expect(reserve.logs).toBe(DEFAULT_RESERVED_LOGS * FDS_PER_OPEN_LOG)
    const reserved = Object.values(reserve).reduce((a, b) => a + b, 0)
    expect(fdBudget(1024, reserve)).toEqual({ limit: 1024, reserved, connections: 1024 - reserved })
    expect(fdBudget(10, reserve).connections).toBe(0)
    expect(fdBudget(Infinity, reserve).connections).toBe(Infinity)
    expect(defaultFdReserve(500).logs).toBe(1000) // the reserve for logs follows the open-log count it is given
  })

  it('reads the soft RLIMIT_NOFILE of this process', () => {
    const l = readFdLimit()
    expect(l).toBeDefined()
    if (process.platform === 'linux') {
      const soft = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1]!
      expect(l!.soft).toBe(soft === 'unlimited' ? Infinity : Number(soft))
    }
  })
})

describe('connectionLimits', () => {
  const reserve = defaultFdReserve()
  const reserved = fdBudget(0, reserve).reserved

  it('derives the caps from the budget when not set: all that is left (at most 4096), a quarter per client', () => {
    expect(connectionLimits(cfg(), limit(reserved + 100), reserve)).toMatchObject({ maxConnections: 100, maxConnectionsPerClient: 25 })
    expect(connectionLimits(cfg(), limit(1_000_000), reserve)).toMatchObject({ maxConnections: 4096, maxConnectionsPerClient: 1024 })
    expect(connectionLimits(cfg(), undefined, reserve)).toMatchObject({ maxConnections: 4096, budget: undefined })
    expect(connectionLimits(cfg({ maxConnections: 50, maxConnectionsPerClient: 50 }), limit(reserved + 100), reserve)).toMatchObject({ maxConnections: 50, maxConnectionsPerClient: 50 })
  })

  it('refuses a cap the limit cannot hold, naming the knob and what to do', () => {
    const err = (() => {
      try {
        connectionLimits(cfg({ maxConnections: 101 }), limit(reserved + 100), reserve)
      } catch (e) {
        return e as Error
      }
    })()
    expect(err).toBeInstanceOf(ConfigError)
    expect(err!.message).toMatch(/--max-connections \/ UCANLOG_MAX_CONNECTIONS is 101/)
    expect(err!.message).toContain(`ulimit -n ${reserved + 101}`)
    expect(err!.message).toContain('at most 100')
    // A budget too small to serve is refused too, unless the cap is set explicitly.
    expect(() => connectionLimits(cfg(), limit(reserved + 3), reserve)).toThrow(/ulimit -n/)
    expect(connectionLimits(cfg({ maxConnections: 3 }), limit(reserved + 3), reserve).maxConnections).toBe(3)
  })

  it('refuses inconsistent knobs', () => {
    expect(() => connectionLimits(cfg({ maxConnections: 10, maxConnectionsPerClient: 11 }), undefined, reserve)).toThrow(/--max-connections-per-client/)
    expect(() => connectionLimits(cfg({ headersTimeoutMs: 2000, requestTimeoutMs: 1000 }), undefined, reserve)).toThrow(/--headers-timeout/)
    expect(() => connectionLimits(cfg({ idleTimeoutMs: 1000, witnessTimeoutMs: 1000 }), undefined, reserve)).toThrow(/--idle-timeout/)
  })
})

