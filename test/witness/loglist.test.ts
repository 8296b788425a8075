/**
 * The witness network's log-list format (logs/v0) and pull-logs semantics: parse, format, and
 * apply a list add-only to a real SQLite witness store. Vectors: test/vectors/PROVENANCE.md
 * ("Witness network log lists").
 */
import { describe, expect, it } from 'vitest'
import { ed25519Signer } from '../../src/tlog/note.js'
import { formatLogList, MalformedLogListError, parseLogList, pullLogs, SqliteWitnessStore } from '../../witness/index.js'
import { LOG } from '../vectors/litewitness.js'

const GEOMYS = 'keyserver.geomys.org+16b31509+ARLJ+pmTj78HzTeBj04V+LVfB+GFAQyrg54CRIju7Nn8'
const SIGSUM =
  'sigsum.org/v1/tree/4e89cc51651f0d95f3c6127c15e1a42e3ddf7046c5b17b752689c402e773bb4d+778629b1+AUZEryq9QPSJWgA7yjUPnVkSqzAaScd/E+W22QXCCl/m'

/** Two entries of witness-network.org's testing list (log-list.1), as in the digest §8.2. */
const TESTING_LIST = `# testing list excerpt
logs/v0

vkey ${GEOMYS}
qpd 1440
contact keyserver-tlog@geomys.org

vkey ${SIGSUM}
qpd 8640
contact sigsum-logs (at) glasklarteknik.se
`

const other = ed25519Signer('example.com/other', new Uint8Array(32).fill(7))

describe('parseLogList', () => {
  it('parses the witness-network testing list: origin = key name, qpd, contact', () => {
    expect(parseLogList(TESTING_LIST)).toEqual({
      logs: [
        { origin: 'keyserver.geomys.org', vkey: GEOMYS, qpd: 1440, contact: 'keyserver-tlog@geomys.org' },
        {
          origin: 'sigsum.org/v1/tree/4e89cc51651f0d95f3c6127c15e1a42e3ddf7046c5b17b752689c402e773bb4d',
          vkey: SIGSUM,
          qpd: 8640,
          contact: 'sigsum-logs (at) glasklarteknik.se',
        },
      ],
      skipped: [],
    })
  })

  it('accepts an empty list, CRLF, indentation, comments and unknown keys; an origin line overrides the key name', () => {
    expect(parseLogList('logs/v0\n')).toEqual({ logs: [], skipped: [] })
    const list = `# c\r\n  logs/v0  \r\n\r\n  vkey ${other.vkey}\r\n  origin go.sum database tree\r\n  bastion none\r\n  qpd 0\r\n`
    expect(parseLogList(list)).toEqual({ logs: [{ origin: 'go.sum database tree', vkey: other.vkey }], skipped: [] })
  })

  it('skips (and reports) bad or non-Ed25519 vkeys and repeated origins; the first entry wins', () => {
    const cosigKey = 'example.com/witness+10a1c019+BGSEitir7W6FmBs7OHWyUrh2frtLAvcDrKOx5xu9ao5Q' // type 0x04: not a log key
    const list = `logs/v0\nvkey ${cosigKey}\nvkey garbage\nvkey ${LOG.vkey}\nvkey ${other.vkey}\norigin ${LOG.origin}\n`
    const r = parseLogList(list)
    expect(r.logs).toEqual([{ origin: LOG.origin, vkey: LOG.vkey }])
    expect(r.skipped).toHaveLength(3)
    expect(r.skipped[0]).toMatch(/^line 2: skipping vkey .*want 0x01/)
    expect(r.skipped[1]).toMatch(/^line 3: skipping vkey "garbage"/)
    expect(r.skipped[2]).toBe(`line 5: skipping a second entry for origin "${LOG.origin}"`)
  })

  it('refuses a list without the logs/v0 header, a key before the first vkey, or an empty vkey, naming the line', () => {
    const bad: [string, RegExp][] = [
      ['', /no "logs\/v0" header/],
      ['# only a comment\n', /no "logs\/v0" header/],
      [`logs/v1\nvkey ${LOG.vkey}\n`, /^line 1: expected the header "logs\/v0"/],
      [`vkey ${LOG.vkey}\n`, /^line 1: expected the header/],
      ['logs/v0\n\nqpd 5\n', /^line 3: expected a "vkey" line first/],
      [`logs/v0\nvkey ${LOG.vkey}\nvkey\n`, /^line 3: empty vkey/],
    ]
    for (const [text, msg] of bad) {
      expect(() => parseLogList(text), JSON.stringify(text)).toThrow(MalformedLogListError)
      expect(() => parseLogList(text)).toThrow(msg)
    }
  })

  it('round-trips formatLogList, writing origin lines only when the origin differs from the key name', () => {
    const logs = [
      { origin: LOG.origin, vkey: LOG.vkey },
      { origin: 'go.sum database tree', vkey: other.vkey, qpd: 24, contact: 'ops (at) example.com' },
    ]
    const text = formatLogList(logs)
    expect(text).toBe(`logs/v0\n\nvkey ${LOG.vkey}\n\nvkey ${other.vkey}\norigin go.sum database tree\nqpd 24\ncontact ops (at) example.com\n`)
    expect(parseLogList(text)).toEqual({ logs, skipped: [] })
  })
})

describe('pullLogs (add-only)', () => {
  it('adds new logs with their key, never changes a known log, warns about different keys and disabled logs', async () => {
    const store = new SqliteWitnessStore(':memory:')
    try {
      // Known with a different key; known and disabled; and one already right.
      store.addLog('keyserver.geomys.org')
      store.addKey('keyserver.geomys.org', ed25519Signer('keyserver.geomys.org', new Uint8Array(32).fill(1)).vkey)
      store.addLog(LOG.origin)
      store.addLog('go.sum database tree')
      store.addKey('go.sum database tree', other.vkey)
      const before = store.listLogs()

      const list = parseLogList(`${TESTING_LIST}\nvkey ${LOG.vkey}\nvkey ${other.vkey}\norigin go.sum database tree\n`)
      const r = await pullLogs(store, list)
      expect(r.added).toEqual(['sigsum.org/v1/tree/4e89cc51651f0d95f3c6127c15e1a42e3ddf7046c5b17b752689c402e773bb4d'])
      expect(r.warnings).toEqual([
        `log keyserver.geomys.org is listed with a different key ${GEOMYS}; keeping ${before[1]!.keys[0]}`,
        `log ${LOG.origin} is listed but disabled here (it has no keys); leaving it disabled`,
      ])
      const after = store.listLogs()
      expect(after.filter((l) => l.origin !== r.added[0])).toEqual(before)
      expect(after.find((l) => l.origin === r.added[0])).toMatchObject({ treeSize: 0, checkpoint: null, keys: [SIGSUM] })

      // Pulling the same list again changes nothing and adds nothing.
      const again = await pullLogs(store, list)
      expect(again.added).toEqual([])
      expect(store.listLogs()).toEqual(after)
    } finally {
      store.close()
    }
  })
})
