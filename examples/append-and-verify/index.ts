/**
 * An app that appends to its space's log and verifies what it got back, with `ucanlog/client`
 * only (docs/client.md in the ucanlog package).
 *
 *   node dist/index.js [SERVICE_URL]       default: $UCANLOG_URL, else http://127.0.0.1:8787
 *
 * A first run of a real app would create its keys once and keep them (0600 files); here a fresh
 * space and agent are made on every run, so each run starts a new log. The last line printed is
 * one JSON object (what the package test reads); any failure exits 1 with `name: message`.
 */
import {
  CLIENT_API_VERSION,
  auditLog,
  createClient,
  createKey,
  delegateSpaceToAgent,
  fetchLogHead,
  fetchWitnessPolicy,
  formatDelegation,
  logFiles,
  parseDelegation,
  parsePolicy,
  type AppendOutcome,
} from 'ucanlog/client'

const url = process.argv[2] ?? process.env.UCANLOG_URL ?? 'http://127.0.0.1:8787'

async function main(): Promise<void> {
  // 1. Keys: the space (the log id) and the app's agent. Keep them: formatKey(key) → a 0600 file.
  const space = await createKey()
  const agent = await createKey()

  // 2. The Space → Agent delegation, as a file holds it (`ucanlog delegate`, or
  //    `storacha delegation create --base64` with the Storacha CLI): its text, newline included.
  const proofText = (await formatDelegation(await delegateSpaceToAgent({ space, agent }))) + '\n'
  const proof = await parseDelegation(proofText)

  // 3. Connect: the service DID comes from GET /did (pass serviceDID to pin it).
  const client = await createClient({ url, agent, proof, onNote: (note) => console.error(`note: ${note}`) })

  // 4. Append: entries are bytes. One text entry, one binary entry. Every receipt is verified
  //    before append resolves (service signature, log signature, cosignatures, inclusion proof,
  //    consistency); the log key, witness policy and service DID are trusted on first use and
  //    pinned in `client.trust` (pass `stateDir` to keep them between runs).
  const entries = [new TextEncoder().encode('hello from an app'), Uint8Array.from([0x00, 0xff, 0xfe, 0x0a, 0x80])]
  const outcomes: AppendOutcome[] = await client.append(entries)
  for (const o of outcomes) {
    if (o.error) throw Object.assign(new Error(`entry ${o.input} refused: ${o.error.message}`), { name: o.error.name })
    if (o.ok?.published !== true) throw new Error(`entry ${o.input} is durable but not yet published (witness quorum not met); rerun later`)
  }

  // 5. Read them back: the same bytes, in log order.
  const read = await client.read(0, entries.length)
  const sameBytes = outcomes.every((o) => o.index !== undefined && Buffer.from(read.entries[o.index]!).equals(o.entry))
  if (!sameBytes) throw new Error('the entries read back differ from those appended')

  // 6. Audit the log from its public files: log signature, cosignatures, tiles, tree, proofs.
  //    The log key and the witness policy are taken on first use here; a real app pins them.
  const head = await fetchLogHead(url, client.space)
  if (head === undefined) throw new Error('the log has no published checkpoint')
  const report = await auditLog({
    fetchFile: logFiles(url, client.space),
    origin: head.origin,
    logVkey: head.vkey,
    policy: parsePolicy(await fetchWitnessPolicy(url)),
  })

  console.log(`appended ${outcomes.length} entries to ${head.origin}; each receipt verified, read back byte for byte, log audited`)
  console.log(
    JSON.stringify({
      api: CLIENT_API_VERSION,
      space: client.space,
      origin: head.origin,
      indexes: outcomes.map((o) => o.index),
      receiptsVerified: outcomes.length,
      pinnedSize: client.trust?.last?.size,
      readBack: sameBytes,
      audit: { size: report.size, inclusionProofsChecked: report.inclusionProofsChecked },
    }),
  )
}

main().catch((err: unknown) => {
  const e = err as Error
  console.error(`${e.name}: ${e.message}`)
  process.exitCode = 1
})
