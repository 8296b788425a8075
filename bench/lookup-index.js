// The lookup index (src/server/entry-index.ts) per entry: bytes on disk and CPU per entry indexed,
// as the service pays it after each publication (catch-up in steps of one batch of 256 entries),
// and the cost of one lookup. The log is built first with the real engine on the local file store.
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Log } from '../dist/src/log/log.js'
import { readEntries } from '../dist/src/log/state.js'
import { FileStore } from '../dist/src/storage/file-store.js'
import { EntryIndex } from '../dist/src/server/entry-index.js'
import { ed25519Signer, leafHash } from '../dist/src/tlog/index.js'

const N = Number(process.env.BENCH_ENTRIES ?? 100000)
const STEP = 256
const origin = 'ucanlog/logs/did:key:z6MkbenchbenchbenchbenchbenchbenchbenchbenchBen'
const witnesses = { cosign: async (note) => ({ note, cosigned: new Set(), satisfied: true }) }

export async function run(report) {
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-lookup-'))
  try {
    const entries = Array.from({ length: N }, (_, i) => new TextEncoder().encode(`bench entry ${i} `.padEnd(100, '.')))
    const files = await FileStore.create(join(dir, 'log'))
    const log = await Log.open({ id: 'bench', origin, signer: ed25519Signer(origin, new Uint8Array(32).fill(1)), files, witnesses })
    let next = 0
    await Promise.all(Array.from({ length: 2048 }, async () => { while (next < N) await log.append(entries[next++]) }))
    await log.close()

    const view = (size) => ({ id: 'bench', origin, checkpoint: { size }, read: (o, l, b) => readEntries(files, size, o, l, b) })
    const file = join(dir, 'lookup.db')
    const index = EntryIndex.open(file, { published: async () => view(N), catchUpEntries: N })
    const probe = leafHash(entries[0])
    const cpu0 = process.cpuUsage()
    let t = performance.now()
    for (let size = Math.min(STEP, N); ; size = Math.min(size + STEP, N)) {
      await index.lookup(view(size), 'leafHash', probe)
      if (size === N) break
    }
    const wall = performance.now() - t
    const cpu = process.cpuUsage(cpu0)
    report(`lookup index: entries indexed, in steps of ${STEP} (one publication each), wall`, (wall * 1000) / N, 'µs/entry')
    report('lookup index: CPU per entry indexed (user + system; reading bundles, two SHA-256, two inserts)', (cpu.user + cpu.system) / N, 'µs/entry')

    const lookups = 10000
    t = performance.now()
    for (let i = 0; i < lookups; i++) await index.lookup(view(N), i % 2 ? 'leafHash' : 'sha256', leafHash(entries[(i * 7919) % N]))
    report(`lookup index: lookups in ${N} entries (hit or miss), wall`, ((performance.now() - t) * 1000) / lookups, 'µs/lookup')
    await index.close()
    report(`lookup index: file size after ${N} entries (WAL checkpointed at close)`, (await stat(file)).size / N, 'bytes/entry')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
