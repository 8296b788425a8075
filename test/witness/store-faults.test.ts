/**
 * Issue 15 item 2, the bundled witness: a failed write of its state never yields a cosignature
 * (c2sp.org/tlog-witness: the witness records the latest size durably before it cosigns). The
 * store's compare-and-swap fails either before anything is written, or after its commit (the write
 * happened, the call still failed: an fsync error reported late). Either way the answer is a 500
 * without details and no signature line; the retry is answered from what the store really holds:
 * cosigned when nothing was written, 409 with the stored size when it was (then the log resends
 * from that size and gets its cosignature), so the witness never cosigns what it did not persist
 * and never rolls back.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { WitnessLog, WitnessStore } from '../../witness/index.js'
import { CP1, CP3, note, PROOF_1_3 } from '../vectors/litewitness.js'
import { litewitnessStore, request, startWitness } from './helpers.js'
import type { Running } from './helpers.js'

/** A store whose next compare-and-swap fails, before its write or after it. */
class FailingStore implements WitnessStore {
  failNext: 'before' | 'after' | undefined
  constructor(readonly inner: ReturnType<typeof litewitnessStore>) {}
  getLog(origin: string): WitnessLog | undefined {
    return this.inner.getLog(origin)
  }
  compareAndSwap(origin: string, oldSize: number, newSize: number, rootHash: Uint8Array, checkpoint: string): boolean {
    const fail = this.failNext
    this.failNext = undefined
    const err = Object.assign(new Error('disk I/O error: /var/lib/witness.db'), { code: 'SQLITE_IOERR_FSYNC' })
    if (fail === 'before') throw err
    const swapped = this.inner.compareAndSwap(origin, oldSize, newSize, rootHash, checkpoint)
    if (fail === 'after') throw err
    return swapped
  }
  addLog(origin: string): boolean {
    return this.inner.addLog(origin)
  }
  addKey(origin: string, vkey: string): boolean {
    return this.inner.addKey(origin, vkey)
  }
  deleteKey(origin: string, vkey: string): boolean {
    return this.inner.deleteKey(origin, vkey)
  }
  listLogs(): WitnessLog[] {
    return this.inner.listLogs()
  }
}

let running: Running | undefined
afterEach(async () => {
  await running?.close()
  running = undefined
})

describe('the witness never cosigns what it did not persist (issue 15 item 2)', () => {
  it('a compare-and-swap failing before its write: 500, no cosignature, nothing stored; the retry is cosigned', async () => {
    const inner = litewitnessStore()
    const store = new FailingStore(inner)
    running = await startWitness(store)
    store.failNext = 'before'
    const res = await running.post(request(0, [], note(CP1)))
    expect(res.status).toBe(500)
    expect(await res.text()).toBe('internal error\n')
    expect(inner.getLog(note(CP1).split('\n')[0]!)?.treeSize).toBe(0)
    const retry = await running.post(request(0, [], note(CP1)))
    expect(retry.status).toBe(200)
    expect(await retry.text()).toMatch(/^— /)
    inner.close()
  })

  it('a compare-and-swap failing after its commit: 500, no cosignature; the retry from the old size gets 409 with the stored size, and from that size its cosignature', async () => {
    const inner = litewitnessStore()
    const store = new FailingStore(inner)
    running = await startWitness(store)
    expect((await running.post(request(0, [], note(CP1)))).status).toBe(200)
    store.failNext = 'after'
    const res = await running.post(request(1, PROOF_1_3, note(CP3)))
    expect(res.status).toBe(500)
    const body = await res.text()
    expect(body).toBe('internal error\n')
    expect(body).not.toMatch(/— /)
    // Persisted, though the call failed: a stale retry is refused with the stored size, never cosigned twice over a rollback.
    const stale = await running.post(request(1, PROOF_1_3, note(CP3)))
    expect(stale.status).toBe(409)
    expect(await stale.text()).toBe('3\n')
    const resent = await running.post(request(3, [], note(CP3)))
    expect(resent.status).toBe(200)
    expect(await resent.text()).toMatch(/^— /)
    inner.close()
  })
})
