/**
 * The auditor (`auditLog`, src/client/audit.ts) given bad logs over real loopback HTTP: each lie a log
 * can tell is refused with its own named error (an AuditError subclass), and the honest log passes.
 * Honest logs come from the real engine signed with real keys (fixtures.ts); each test then forks,
 * rolls back, re-signs or flips bytes of a copy. Each test names the check it guards.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type AuditInput, AuditError, auditLog, sampleIndexes } from '../../src/client/audit.js'
import { decodeBase64, formatCheckpoint, formatSignatureLine, parseCheckpoint, parseNote, parsePolicy } from '../../src/tlog/index.js'
import {
  COSIGN_TIME,
  LOG_SIGNER,
  ORIGIN,
  OTHER_SIGNER,
  POLICY,
  POLICY_TEXT,
  W1,
  W2,
  W2_IMPOSTOR,
  W3,
  type LogFilesMap,
  type LogServer,
  buildLog,
  checkpointOf,
  cosignLines,
  entry,
  flipByte,
  logSignatureLine,
  signedCheckpoint,
  startLogServer,
  withCheckpoint,
} from './fixtures.js'

let small10: LogFilesMap // honest log, 10 entries
let small12: LogFilesMap // the same log grown to 12 entries
let forked12: LogFilesMap // same key and origin, entry 3 differs, 12 entries
let big300: LogFilesMap // 300 entries: two entry bundles and a level-1 tile

beforeAll(async () => {
  const entries = Array.from({ length: 300 }, (_, i) => entry(i))
  ;[small10, small12] = await buildLog(entries.slice(0, 12), [10, 12])
  ;[forked12] = await buildLog(entries.slice(0, 12).map((e, i) => (i === 3 ? entry(3, ' (forked)') : e)), [12])
  ;[big300] = await buildLog(entries, [300])
})

let server: LogServer
beforeEach(async () => {
  server = await startLogServer(small10)
})
afterEach(() => server.close())

/** Audits what the server serves now, as a first-time auditor that pinned the log key and POLICY. */
function audit(extra: Partial<AuditInput> = {}) {
  return auditLog({ fetchFile: server.fetchFile, origin: ORIGIN, logVkey: LOG_SIGNER.vkey, policy: POLICY, now: COSIGN_TIME, ...extra })
}

/** The checkpoint (size, root) an auditor saw in `files`. */
function seen(files: LogFilesMap) {
  const cp = parseCheckpoint(parseNote(checkpointOf(files)).text)
  return { size: cp.size, rootHash: cp.rootHash }
}

/** Expects the audit to be refused with an AuditError named `name` whose message matches `msg`. */
async function expectRefused(p: Promise<unknown>, name: string, msg: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, `expected ${name}`).toBeInstanceOf(AuditError)
  expect((err as Error).name).toBe(name)
  expect((err as Error).message).toMatch(msg)
}

describe('auditLog: the honest log', () => {
  it('verifies the honest logs, consistency with an earlier checkpoint included', async () => {
    const r = await audit()
    expect(r).toMatchObject({ origin: ORIGIN, size: 10, entriesChecked: 10, tilesChecked: 1, inclusionProofsChecked: 10, consistentWith: undefined })
    expect(r.cosignatures).toEqual([
      { name: 'w1', keyName: 'w1.example', timestamp: COSIGN_TIME },
      { name: 'w2', keyName: 'w2.example', timestamp: COSIGN_TIME },
    ])
    server.serve(small12)
    expect((await audit({ previous: seen(small10) })).consistentWith).toBe(10)
    server.serve(big300)
    const big = await audit({ inclusionSample: 20 })
    expect(big).toMatchObject({ size: 300, entriesChecked: 300, tilesChecked: 3, inclusionProofsChecked: 20 })
    // The forked log alone is a valid log: only the checkpoint seen before tells the fork.
    server.serve(forked12)
    expect((await audit()).size).toBe(12)
  })
})

describe('auditLog refuses a log that rewrote its history', () => {
  it('a fork (same key and origin, another entry at index 3) after the auditor saw size 10: LogForked (consistency check)', async () => {
    server.serve(forked12)
    await expectRefused(audit({ previous: seen(small10) }), 'LogForked', /size 12 is not consistent with the size 10 seen last time/)
  })

  it('a fork at the same size (another root for size 10): LogForked (consistency check at equal sizes)', async () => {
    const [forked10] = await buildLog(Array.from({ length: 10 }, (_, i) => entry(i, i === 9 ? ' (forked)' : '')), [10])
    server.serve(forked10!)
    await expectRefused(audit({ previous: seen(small10) }), 'LogForked', /not consistent/)
  })

  it('a rolled-back checkpoint (size 10 after the auditor saw 12): LogRolledBack (rollback check)', async () => {
    await expectRefused(audit({ previous: seen(small12) }), 'LogRolledBack', /last seen size 12, now 10/)
  })
})

describe('auditLog refuses a checkpoint the tiles do not support', () => {
  it('a checkpoint root that does not match the tiles (log-signed and cosigned): RootMismatch (root check)', async () => {
    const cp = parseCheckpoint(parseNote(checkpointOf(small10)).text)
    const lie = formatCheckpoint({ ...cp, rootHash: seen(forked12).rootHash })
    server.serve(withCheckpoint(small10, signedCheckpoint(lie, [W1, W2])))
    await expectRefused(audit(), 'RootMismatch', /the tree recomputed from the entries has root .*, the checkpoint says/)
  })

  it('a byte flipped in a level-0 tile: LeafHashMismatch (entry vs leaf check)', async () => {
    server.serve(flipByte(small10, 'tile/0/000.p/10', 32 * 4 + 7))
    await expectRefused(audit(), 'LeafHashMismatch', /entry 4 does not hash to its leaf in tile\/0\/000\.p\/10/)
  })

  it('a byte flipped in a level-1 tile: TileMismatch (higher tiles recomputed)', async () => {
    server.serve(flipByte(big300, 'tile/1/000.p/1', 5))
    await expectRefused(audit({ inclusionSample: 5 }), 'TileMismatch', /tile\/1\/000\.p\/1 differs from the tree recomputed/)
  })

  it('a byte flipped in an entry bundle (the entry no longer hashes to its leaf): LeafHashMismatch', async () => {
    server.serve(flipByte(small10, 'tile/entries/000.p/10', -1)) // last byte of entry 9
    await expectRefused(audit(), 'LeafHashMismatch', /entry 9 does not hash to its leaf/)
    server.serve(flipByte(big300, 'tile/entries/001.p/44', -1)) // last byte of entry 299, in the second bundle
    await expectRefused(audit({ inclusionSample: 5 }), 'LeafHashMismatch', /entry 299 does not hash to its leaf in tile\/0\/001\.p\/44/)
  })
})

describe('auditLog enforces the witness policy', () => {
  const text = () => parseNote(checkpointOf(small10)).text
  const logSig = () => logSignatureLine(checkpointOf(small10))
  const serveNote = (note: string) => server.serve(withCheckpoint(small10, note))

  it('a cosignature missing (only w1 of the 2 needed): WitnessPolicyNotMet (quorum check)', async () => {
    serveNote(`${text()}\n${logSig()}${cosignLines(text(), [W1])}`)
    await expectRefused(audit(), 'WitnessPolicyNotMet', /cosigned by \[w1\], quorum two/)
  })

  it('no cosignature at all: WitnessPolicyNotMet', async () => {
    serveNote(`${text()}\n${logSig()}`)
    await expectRefused(audit(), 'WitnessPolicyNotMet', /cosigned by \[\]/)
  })

  it('a witness policy not met in general: all three required, two cosigned: WitnessPolicyNotMet', async () => {
    const all = parsePolicy(POLICY_TEXT.replace('group two 2', 'group two all'))
    await expectRefused(audit({ policy: all }), 'WitnessPolicyNotMet', /cosigned by \[w1, w2\]/)
    // …and met once the third cosigns.
    serveNote(`${text()}\n${logSig()}${cosignLines(text(), [W1, W2, W3])}`)
    expect((await audit({ policy: all })).cosignatures.map((c) => c.name)).toEqual(['w1', 'w2', 'w3'])
  })

  it('a cosignature forged with another key under w2\'s name (other key ID): not counted, WitnessPolicyNotMet', async () => {
    serveNote(`${text()}\n${logSig()}${cosignLines(text(), [W1, W2_IMPOSTOR])}`)
    await expectRefused(audit(), 'WitnessPolicyNotMet', /cosigned by \[w1\]/)
  })

  it('a cosignature with w2\'s name and key ID but bad signature bytes: CosignatureInvalid (cosignature check)', async () => {
    const good = W2.cosign(text(), COSIGN_TIME)
    const sig = new Uint8Array(good.signature)
    sig[40]! ^= 1
    serveNote(`${text()}\n${logSig()}${cosignLines(text(), [W1])}${formatSignatureLine({ ...good, signature: sig })}`)
    await expectRefused(audit(), 'CosignatureInvalid', /w2 \(w2\.example\) does not verify/)
    // Forged by another key but claiming w2's key ID: the same.
    const impostor = W2_IMPOSTOR.cosign(text(), COSIGN_TIME)
    serveNote(`${text()}\n${logSig()}${cosignLines(text(), [W1])}${formatSignatureLine({ ...impostor, keyId: W2.keyId })}`)
    await expectRefused(audit(), 'CosignatureInvalid', /w2 \(w2\.example\) does not verify/)
  })

  it('a real cosignature by w2 over another checkpoint (size 12) attached to this one: CosignatureInvalid', async () => {
    const other = parseNote(checkpointOf(small12)).text
    serveNote(`${text()}\n${logSig()}${cosignLines(text(), [W1])}${cosignLines(other, [W2])}`)
    await expectRefused(audit(), 'CosignatureInvalid', /w2/)
  })

  it('a cosignature dated more than 10 minutes after the auditor\'s clock: CosignatureInvalid', async () => {
    serveNote(`${text()}\n${logSig()}${cosignLines(text(), [W1])}${cosignLines(text(), [W2], COSIGN_TIME + 601)}`)
    await expectRefused(audit(), 'CosignatureInvalid', /w2 is dated in the future \(1700000601\)/)
    expect((await audit({ now: COSIGN_TIME + 1 })).size).toBe(10) // 600 s of clock skew tolerated
  })
})

describe('auditLog checks the log signature and origin', () => {
  it('a checkpoint whose log signature is bad (one byte flipped): LogSignatureInvalid', async () => {
    const note = checkpointOf(small10)
    const { text, signatures } = parseNote(note)
    const sig = new Uint8Array(signatures[0]!.signature)
    sig[10]! ^= 1
    const bad = `${text}\n${formatSignatureLine({ ...signatures[0]!, signature: sig })}${signatures.slice(1).map(formatSignatureLine).join('')}`
    server.serve(withCheckpoint(small10, bad))
    await expectRefused(audit(), 'LogSignatureInvalid', new RegExp(`does not verify with ${LOG_SIGNER.vkey.replaceAll('+', '\\+')}`))
  })

  it('a checkpoint signed by another key than the pinned one (same origin), cosigned: LogSignatureInvalid', async () => {
    const text = parseNote(checkpointOf(small10)).text
    server.serve(withCheckpoint(small10, signedCheckpoint(text, [W1, W2], OTHER_SIGNER)))
    await expectRefused(audit(), 'LogSignatureInvalid', /does not verify/)
    // Signed by both: the pinned key's signature is enough (an extra unknown signature is ignored).
    server.serve(withCheckpoint(small10, signNoteBoth(text)))
    expect((await audit()).size).toBe(10)
  })

  it('a checkpoint of another origin than expected: OriginMismatch', async () => {
    await expectRefused(audit({ origin: 'ucanlog.test/logs/other' }), 'OriginMismatch', /checkpoint origin ucanlog\.test\/logs\/did:key:\S+ is not ucanlog\.test\/logs\/other/)
  })

  it('no checkpoint, or a tile or bundle missing: MissingFile', async () => {
    server.serve(new Map())
    await expectRefused(audit(), 'MissingFile', /no published checkpoint/)
    const noTile = new Map(small10)
    noTile.delete('tile/0/000.p/10')
    server.serve(noTile)
    await expectRefused(audit(), 'MissingFile', /tile tile\/0\/000\.p\/10 is missing/)
    const noBundle = new Map(small10)
    noBundle.delete('tile/entries/000.p/10')
    server.serve(noBundle)
    await expectRefused(audit(), 'MissingFile', /entry bundle tile\/entries\/000\.p\/10 is missing/)
    const noL1 = new Map(big300)
    noL1.delete('tile/1/000.p/1')
    server.serve(noL1)
    await expectRefused(audit({ inclusionSample: 5 }), 'MissingFile', /tile tile\/1\/000\.p\/1 is missing/)
  })

  it('a bundle with too few entries or a tile of the wrong length: MalformedFile', async () => {
    const short = new Map(small10)
    short.set('tile/entries/000.p/10', small10.get('tile/entries/000.p/10')!.subarray(0, 9 * 9)) // 9 entries of 2 + 7 bytes
    server.serve(short)
    await expectRefused(audit(), 'MalformedFile', /tile\/entries\/000\.p\/10 has 9 entries, want 10/)
    server.serve(new Map(small10).set('tile/0/000.p/10', small10.get('tile/0/000.p/10')!.subarray(0, 31 * 10)))
    await expectRefused(audit(), 'MalformedFile', /tile\/0\/000\.p\/10 is 310 bytes, want 320/)
  })
})

/** The checkpoint text signed by the pinned log key and another key of the same name, cosigned by w1 and w2. */
function signNoteBoth(text: string): string {
  const one = signedCheckpoint(text, [W1, W2])
  const split = one.lastIndexOf('\n\n') + 2
  return one.slice(0, split) + logSignatureLine(signedCheckpoint(text, [], OTHER_SIGNER)) + one.slice(split)
}

describe('auditLog: a server that changes its answers between requests', () => {
  /**
   * fetchFile that serves the log honestly except the `n`th request (0-based), answered by `lie`.
   * The honest audit's request count is measured first, so `n = -1` is the audit's last request.
   */
  async function lyingAt(n: number, lie: (path: string, honest: Uint8Array | undefined) => Uint8Array | undefined, extra: Partial<AuditInput> = {}) {
    let count = 0
    await audit({ ...extra, fetchFile: async (p) => (count++, server.fetchFile(p)) })
    const at = n < 0 ? count + n : n
    let i = 0
    return audit({ ...extra, fetchFile: async (p) => (i++ === at ? lie(p, await server.fetchFile(p)) : server.fetchFile(p)) })
  }
  const flipped = (_: string, b: Uint8Array | undefined) => {
    const c = new Uint8Array(b!)
    c[0]! ^= 1
    return c
  }

  it('a tile that changes after it was checked, read again for an inclusion proof: InclusionProofInvalid', async () => {
    await expectRefused(lyingAt(-1, flipped), 'InclusionProofInvalid', /inclusion proof of entry 9 does not verify/)
  })

  it('a tile gone when read again for an inclusion proof: MissingFile, not InclusionProofInvalid', async () => {
    await expectRefused(lyingAt(-1, () => undefined), 'MissingFile', /tile tile\/0\/000\.p\/10 is missing/)
  })

  it('a tile gone when read for the consistency proof: MissingFile, not LogForked', async () => {
    server.serve(small12)
    await expectRefused(lyingAt(-1, () => undefined, { previous: seen(small10) }), 'MissingFile', /tile tile\/0\/000\.p\/12 is missing/)
  })
})

describe('auditLog: details of the checks', () => {
  const text = () => parseNote(checkpointOf(small10)).text
  const logSig = () => logSignatureLine(checkpointOf(small10))

  it('a log-signed note that is not a checkpoint: MalformedFile', async () => {
    server.serve(withCheckpoint(small10, signedCheckpoint('not a checkpoint\n', [])))
    await expectRefused(audit(), 'MalformedFile', /^checkpoint: /)
  })

  it('an entry bundle cut inside an entry: MalformedFile naming the bundle', async () => {
    server.serve(new Map(small10).set('tile/entries/000.p/10', small10.get('tile/entries/000.p/10')!.subarray(0, 9 * 9 + 4)))
    await expectRefused(audit(), 'MalformedFile', /^tile\/entries\/000\.p\/10: /)
  })

  it('without `now`, the system clock bounds cosignature timestamps (an hour ahead is refused)', async () => {
    const later = Math.floor(Date.now() / 1000) + 3600
    server.serve(withCheckpoint(small10, `${text()}\n${logSig()}${cosignLines(text(), [W1])}${cosignLines(text(), [W2], later)}`))
    await expectRefused(audit({ now: undefined }), 'CosignatureInvalid', /dated in the future/)
  })

  it('a line with a witness\'s key ID under another key name is not that witness\'s (ignored, not refused)', async () => {
    const stranger = { name: 'stranger.example', keyId: W2.keyId, signature: new Uint8Array(72).fill(1) }
    server.serve(withCheckpoint(small10, `${checkpointOf(small10)}${formatSignatureLine(stranger)}`))
    expect((await audit()).cosignatures.map((c) => c.name)).toEqual(['w1', 'w2'])
  })

  it('a cosignature line repeated is reported once', async () => {
    server.serve(withCheckpoint(small10, `${checkpointOf(small10)}${cosignLines(text(), [W1])}`))
    expect((await audit()).cosignatures.map((c) => c.name)).toEqual(['w1', 'w2'])
  })

  it('reports progress per entry bundle', async () => {
    server.serve(big300)
    const progress: [number, number][] = []
    await audit({ inclusionSample: 2, onProgress: (d, t) => progress.push([d, t]) })
    expect(progress).toEqual([
      [1, 2],
      [2, 2],
    ])
  })

  it('a previous checkpoint of size 0 (the empty tree) is consistent with anything', async () => {
    const empty = decodeBase64('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=') // SHA-256 of the empty string
    expect((await audit({ previous: { size: 0, rootHash: empty } })).consistentWith).toBe(0)
  })

  it('every error is an AuditError (the shared VerificationError) with exit code 3 and its own name', async () => {
    const e = new AuditError('x')
    expect([e.name, e.exitCode]).toEqual(['VerificationError', 3])
  })
})

describe('sampleIndexes (which inclusion proofs are checked)', () => {
  it('every index when the log is no larger than the sample', () => {
    expect(sampleIndexes(10, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(sampleIndexes(3, 1000)).toEqual([0, 1, 2])
    expect(sampleIndexes(0, 5)).toEqual([])
  })

  it('else `max` distinct indexes: the first, the last, and an even spread (no gap over 2·size/max)', () => {
    for (const [size, max] of [
      [300, 5],
      [1001, 1000],
      [10_000, 7],
    ] as const) {
      const s = sampleIndexes(size, max)
      expect(new Set(s).size).toBe(max)
      expect(s).toContain(0)
      expect(s).toContain(size - 1)
      const sorted = [...s].sort((x, y) => x - y)
      expect(sorted.at(-1)).toBe(size - 1)
      for (let k = 1; k < sorted.length; k++) expect(sorted[k]! - sorted[k - 1]!).toBeLessThanOrEqual((2 * size) / max)
    }
  })
})
