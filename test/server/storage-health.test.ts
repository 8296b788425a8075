/**
 * Issue 15 item 1, the parts test/e2e/disk-full.test.ts cannot choose: which error codes mean a full
 * disk (src/storage/storage-full.ts), what the client is answered for each (src/ucan/errors.ts
 * logRefusal), and what /healthz is given (src/server/storage-health.ts StorageHealth).
 */
import { describe, expect, it } from 'vitest'
import { StorageHealth } from '../../src/server/storage-health.js'
import { StorageFullError, isStorageFull } from '../../src/storage/storage-full.js'
import { logRefusal } from '../../src/ucan/errors.js'

const sysError = (code: string) => Object.assign(new Error(`${code}: no space left on device, write '/data/logs/x/tile/0/000'`), { code })

describe('a full disk', () => {
  it('is ENOSPC, EDQUOT or SQLITE_FULL, on the error or its cause; nothing else', () => {
    for (const code of ['ENOSPC', 'EDQUOT', 'SQLITE_FULL']) {
      expect(isStorageFull(sysError(code)), code).toBe(true)
      expect(isStorageFull(new Error('wrapped', { cause: sysError(code) })), `${code} as cause`).toBe(true)
    }
    for (const other of [sysError('EIO'), sysError('ENOENT'), new Error('x'), undefined, null, 'ENOSPC']) expect(isStorageFull(other)).toBe(false)
  })

  it('is answered StorageFull naming the code only (no path, no stack); other errors stay unnamed', () => {
    for (const cause of [sysError('SQLITE_FULL'), new StorageFullError(sysError('ENOSPC')), { name: 'StorageFull', message: 'stored' }]) {
      const r = logRefusal(cause)
      expect(r?.name).toBe('StorageFull')
      expect(r?.message).not.toContain('/data')
      expect(JSON.stringify(r?.toJSON())).not.toMatch(/\bat /)
    }
    expect(logRefusal(sysError('SQLITE_FULL'))?.message).toContain('SQLITE_FULL')
    // A failed write is named too, StorageFailed (issue 15 item 2); anything else stays unnamed.
    expect(logRefusal(sysError('EIO'))?.name).toBe('StorageFailed')
    expect(logRefusal(sysError('EACCES'))).toBeUndefined()
    // The PostgreSQL stores' driver errors meaning the database is unreachable: DatabaseUnavailable.
    for (const code of ['ECONNREFUSED', '57P01', '08006']) expect(logRefusal(sysError(code))?.name, code).toBe('DatabaseUnavailable')
    expect(logRefusal(new Error('Connection terminated unexpectedly'))?.name).toBe('DatabaseUnavailable')
    expect(logRefusal(sysError('23505'))).toBeUndefined() // a statement's failure (unique violation) is not an outage
  })

  it('shows at /healthz from the first failure until an append succeeds', () => {
    let now = Date.parse('2026-01-02T03:04:05Z')
    const lines: string[] = []
    const health = new StorageHealth({ now: () => now, logger: { warn: (_: unknown, m?: string) => void lines.push(`warn ${m}`), info: (m: unknown) => void lines.push(`info ${String(m)}`) } as never })
    const eio = sysError('EIO')
    expect(health.failed(eio)).toBe(eio)
    expect(health.full()).toBeUndefined()

    const first = health.failed(sysError('ENOSPC'))
    expect(first).toBeInstanceOf(StorageFullError)
    expect((first as StorageFullError).name).toBe('StorageFull')
    expect(health.full()).toEqual({ status: 'StorageFull', code: 'ENOSPC', since: '2026-01-02T03:04:05.000Z' })
    now += 60_000
    health.failed(sysError('SQLITE_FULL'))
    expect(health.full()?.since).toBe('2026-01-02T03:04:05.000Z') // since the first failure
    health.succeeded()
    expect(health.full()).toBeUndefined()
    health.succeeded()
    expect(lines).toEqual(['warn storage full: appends refused StorageFull until space is freed', 'info storage has room again: appends accepted'])
  })
})
