// Log engine throughput on the local file store (real fsyncs), witnesses out of the way
// (a cosigner that meets the quorum at once): how fast entries are sequenced, integrated into
// tiles and bundles, committed, checkpointed and proven.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Log } from '../dist/src/log/log.js'
import { FileStore } from '../dist/src/storage/file-store.js'
import { CarPacker } from '../dist/src/storage/car-packer.js'
import { ed25519Signer, leafHash, MemoryHashStore, proveRecord } from '../dist/src/tlog/index.js'

const N = Number(process.env.BENCH_ENTRIES ?? 20000)
const origin = 'ucanlog/logs/did:key:z6MkbenchbenchbenchbenchbenchbenchbenchbenchBen'
const witnesses = { cosign: async (note) => ({ note, cosigned: new Set(), satisfied: true }) }

export async function run(report) {
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-'))
  try {
    const entries = Array.from({ length: N }, (_, i) => new TextEncoder().encode(`bench entry ${i} `.padEnd(100, '.')))

    let t = performance.now()
    for (const e of entries) leafHash(e)
    report('leaf hashes (100-byte entries, node:crypto)', N / ((performance.now() - t) / 1000), 'hashes/s')

    const mem = new MemoryHashStore()
    t = performance.now()
    for (const e of entries) mem.append(leafHash(e))
    report('tree building in memory (stored hashes)', N / ((performance.now() - t) / 1000), 'entries/s')

    t = performance.now()
    for (let i = 0; i < 2000; i++) await proveRecord(N, (i * 7919) % N, mem)
    report(`inclusion proofs, tree of ${N}`, 2000 / ((performance.now() - t) / 1000), 'proofs/s')

    for (const archive of [false, true]) {
      const files = await FileStore.create(join(dir, `log-${archive}`))
      const log = await Log.open({
        id: 'bench', origin, signer: ed25519Signer(origin, new Uint8Array(32).fill(1)), files, witnesses,
        archive: archive ? await CarPacker.open(join(dir, `cars-${archive}`)) : undefined,
      })
      t = performance.now()
      let next = 0 // keep 2048 in flight: below the pushback bound (4096 pending)
      await Promise.all(Array.from({ length: 2048 }, async () => { while (next < N) await log.append(entries[next++]) }))
      const s = (performance.now() - t) / 1000
      report(`Log.append on the file store${archive ? ' + one CAR per checkpoint' : ''} (batches of 256, fsync, proofs in results)`, N / s, 'entries/s')
      await log.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
