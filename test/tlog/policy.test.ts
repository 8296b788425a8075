import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ed25519Cosigner } from '../../src/tlog/cosignature.js'
import { ed25519Signer, formatSignatureLine, formatVerifierKey, MalformedNoteError, signNote } from '../../src/tlog/note.js'
import { MAX_POLICY_ENTRIES, MAX_POLICY_SIZE, parsePolicy, PolicyError, verifiedWitnesses } from '../../src/tlog/policy.js'
import { CP5, LOG, note, WITNESS } from '../vectors/litewitness.js'

const seed = (s: string) => createHash('sha256').update(s).digest()
const cosigner = (name: string) => ed25519Cosigner(`${name.toLowerCase()}.example`, seed(name))
const W = Object.fromEntries(['X1', 'X2', 'X3', 'Y1', 'Y2', 'Y3'].map((n) => [n, cosigner(n)]))
const logKey = LOG.vkey

/** The C2SP tlog-policy example, with real keys. */
const example = `# C2SP tlog-policy example
log ${logKey} https://log.example/

witness X1 ${W.X1!.vkey}
witness X2 ${W.X2!.vkey} https://x2.example/
witness X3 ${W.X3!.vkey}
group X-witnesses 2 X1 X2 X3

  # indented comment
witness\tY1\t${W.Y1!.vkey}
witness Y2 ${W.Y2!.vkey}
witness Y3 ${W.Y3!.vkey}   
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
`

const set = (...names: string[]) => new Set(names)

describe('parsePolicy', () => {
  it('parses the C2SP example', () => {
    const p = parsePolicy(example)
    expect(p.logs).toEqual([{ vkey: logKey, url: 'https://log.example/' }])
    expect(p.witnesses.map((w) => w.name)).toEqual(['X1', 'X2', 'X3', 'Y1', 'Y2', 'Y3'])
    expect(p.witnesses[1]!.url).toBe('https://x2.example/')
    expect(p.witnesses[0]!.url).toBeUndefined()
    expect(p.witnesses[0]!.verifier.vkey).toBe(W.X1!.vkey)
    expect(p.quorum).toBe('X-and-Y')
    expect(p.text).toBe(example)
  })

  it('evaluates k-of-n, any, all and nested groups', () => {
    const p = parsePolicy(example)
    expect(p.satisfied(set())).toBe(false)
    expect(p.satisfied(set('X1', 'X2', 'Y1'))).toBe(true)
    expect(p.satisfied(set('X1', 'X3', 'Y3'))).toBe(true)
    expect(p.satisfied(set('X1', 'Y1', 'Y2', 'Y3'))).toBe(false) // only 1 of 2 needed X
    expect(p.satisfied(set('X1', 'X2', 'X3'))).toBe(false) // no Y
    expect(p.satisfied(set('X1', 'X2', 'X3', 'Y1', 'Y2', 'Y3'))).toBe(true)
    expect(p.satisfied(set('X-witnesses', 'Y-witnesses'))).toBe(false) // groups are computed, not named
  })

  it('supports quorum none, a single witness and numeric all', () => {
    expect(parsePolicy('quorum none\n').satisfied(set())).toBe(true)
    expect(parsePolicy(`log ${logKey}\nquorum none`).logs).toHaveLength(1) // no final newline
    const single = parsePolicy(`witness w ${W.X1!.vkey}\nquorum w\n`)
    expect(single.satisfied(set())).toBe(false)
    expect(single.satisfied(set('w'))).toBe(true)
    const three = parsePolicy(`witness a ${W.X1!.vkey}\nwitness b ${W.X2!.vkey}\nwitness c ${W.X3!.vkey}\ngroup g 3 a b c\nquorum g\n`)
    expect(three.satisfied(set('a', 'b'))).toBe(false)
    expect(three.satisfied(set('a', 'b', 'c'))).toBe(true)
  })

  const errors: [string, string, number, RegExp?][] = [
    ['unknown keyword', `quorum none\nwitnesses w ${W.X1!.vkey}\n`, 2, /unknown keyword/],
    ['log with a 0x04 key', `log ${W.X1!.vkey}\nquorum none\n`, 1, /type 0x01/],
    ['witness with a 0x01 key', `\n\nwitness w ${WITNESS.vkeyType01}\nquorum none\n`, 3, /type 0x04/],
    ['malformed vkey', `witness w ${W.X1!.vkey.slice(0, -2)}\nquorum none\n`, 1, /invalid witness vkey/],
    ['log without key', 'log\nquorum none\n', 1],
    ['log with extra fields', `log ${logKey} https://a/ extra\nquorum none\n`, 1],
    ['witness without key', 'witness w\nquorum none\n', 1],
    ['trailing comment (only whole-line comments exist)', `witness w ${W.X1!.vkey} https://w/ # note\nquorum none\n`, 1],
    ['duplicate witness name', `witness w ${W.X1!.vkey}\nwitness w ${W.X2!.vkey}\nquorum none\n`, 2, /duplicate name/],
    ['group named like a witness', `witness w ${W.X1!.vkey}\ngroup w any w\nquorum none\n`, 2, /duplicate name/],
    ['duplicate witness key', `witness a ${W.X1!.vkey}\nwitness b ${W.X1!.vkey}\nquorum none\n`, 2, /duplicate witness key/],
    ['same key under another name', `witness a ${W.X1!.vkey}\nwitness b ${ed25519Cosigner('other', seed('X1')).vkey}\nquorum none\n`, 2, /duplicate witness key/],
    ['duplicate log key', `log ${logKey}\nlog ${ed25519Signer('other', Buffer.from(LOG.seedHex, 'hex')).vkey}\nquorum none\n`, 2, /duplicate log key/],
    ['witness named none', `witness none ${W.X1!.vkey}\nquorum none\n`, 1, /predefined/],
    ['forward reference', `group g any w\nwitness w ${W.X1!.vkey}\nquorum g\n`, 1, /not defined/],
    ['quorum before definition', `quorum w\nwitness w ${W.X1!.vkey}\n`, 1, /not defined/],
    ['undefined quorum', `witness w ${W.X1!.vkey}\nquorum v\n`, 2, /not defined/],
    ['group without members', `witness w ${W.X1!.vkey}\ngroup g any\nquorum g\n`, 2],
    ['threshold 0', `witness w ${W.X1!.vkey}\ngroup g 0 w\nquorum g\n`, 2, /threshold/],
    ['threshold > n', `witness w ${W.X1!.vkey}\ngroup g 2 w\nquorum g\n`, 2, /larger than/],
    ['threshold with leading zero', `witness w ${W.X1!.vkey}\ngroup g 01 w\nquorum g\n`, 2, /threshold/],
    ['threshold with sign', `witness w ${W.X1!.vkey}\ngroup g +1 w\nquorum g\n`, 2, /threshold/],
    ['member twice in a group', `witness w ${W.X1!.vkey}\ngroup g any w w\nquorum g\n`, 2, /already a group member/],
    ['member in two groups', `witness w ${W.X1!.vkey}\ngroup g any w\ngroup h any w\nquorum g\n`, 3, /already a group member/],
    ['none as member', `witness w ${W.X1!.vkey}\ngroup g any w none\nquorum g\n`, 2, /none/],
    ['two quorum lines', 'quorum none\n# c\nquorum none\n', 3, /more than one quorum/],
    ['quorum with two names', `witness w ${W.X1!.vkey}\nquorum w w\n`, 2],
    ['missing quorum', `log ${logKey}\n\n`, 3, /without a quorum/],
    ['empty policy', '', 1, /without a quorum/],
    ['CRLF line endings', 'quorum none\r\n', 1, /invalid character/],
    ['NUL byte', '# \u0000\nquorum none\n', 1, /invalid character/],
    ['DEL byte', 'quorum none\n\u007f\n', 2, /invalid character/],
  ]
  for (const [what, text, line, msg] of errors) {
    it(`rejects ${what}, naming line ${line}`, () => {
      let err: unknown
      try {
        parsePolicy(text)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(PolicyError)
      expect((err as Error).name).toBe('PolicyError')
      expect((err as Error).message).toMatch(new RegExp(`^line ${line}: `))
      if (msg) expect((err as Error).message).toMatch(msg)
    })
  }

  it('accepts non-ASCII names as opaque strings', () => {
    const p = parsePolicy(`witness K ${W.X1!.vkey}\nwitness \u212a ${W.X2!.vkey}\ngroup g all K \u212a\nquorum g\n`)
    expect(p.satisfied(set('K'))).toBe(false)
    expect(p.satisfied(set('K', '\u212a'))).toBe(true)
  })
})

describe('verifiedWitnesses', () => {
  const logSigner = ed25519Signer(LOG.origin, Buffer.from(LOG.seedHex, 'hex'))
  const cosig = (c: ReturnType<typeof cosigner>, text = CP5.text) => formatSignatureLine(c.cosign(text, 1700000000))

  it('collects the policy names of valid cosignatures and ignores the rest', () => {
    const p = parsePolicy(example)
    const signed = signNote(CP5.text, [logSigner])
    expect(signed).toBe(note(CP5))
    const stranger = cosigner('stranger')
    const forged = formatSignatureLine({ ...W.Y2!.cosign(CP5.text, 1), signature: W.Y2!.cosign(CP5.text, 2).signature.map((b, i) => (i === 8 ? b ^ 1 : b)) })
    const other = cosig(W.Y3!, CP5.text.replace('\n5\n', '\n6\n')) // over another checkpoint
    const msg = signed + cosig(W.X1!) + cosig(W.X3!) + cosig(stranger) + forged + other + cosig(W.X1!)
    const got = verifiedWitnesses(p, msg)
    expect(got).toEqual(set('X1', 'X3'))
    expect(p.satisfied(got)).toBe(false)
    const full = msg + cosig(W.Y1!)
    expect(p.satisfied(verifiedWitnesses(p, full))).toBe(true)
  })

  it('matches by vkey key name and ID, not by policy name', () => {
    const p = parsePolicy(`witness my-witness ${WITNESS.vkey}\nquorum my-witness\n`)
    expect(verifiedWitnesses(p, note(CP5) + WITNESS.cp5CosigLine)).toEqual(set('my-witness'))
    expect(p.satisfied(verifiedWitnesses(p, note(CP5)))).toBe(false)
  })

  it('throws for a malformed note', () => {
    expect(() => verifiedWitnesses(parsePolicy('quorum none\n'), CP5.text)).toThrow(MalformedNoteError)
  })
})

describe('parsePolicy bounds (mutation testing, issue 9)', () => {
  const rejects = (text: string, message: string) => {
    let err: unknown
    try {
      parsePolicy(text)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(PolicyError)
    expect((err as Error).message).toBe(message)
  }
  // Well-formed vkeys without deriving Ed25519 keys (parsePolicy checks form and key ID only).
  const vkey = (name: string, type: number) => formatVerifierKey(name, type, seed(name))

  it('accepts a policy of exactly MAX_POLICY_SIZE characters and refuses one more', () => {
    const head = 'quorum none\n#'
    const exact = head + 'x'.repeat(MAX_POLICY_SIZE - head.length - 1) + '\n'
    expect(exact).toHaveLength(MAX_POLICY_SIZE)
    expect(parsePolicy(exact).quorum).toBe('none')
    rejects(exact + '\n', `policy is larger than ${MAX_POLICY_SIZE} characters`)
  })

  const n = MAX_POLICY_ENTRIES
  it(`accepts ${MAX_POLICY_ENTRIES} logs and refuses one more`, () => {
    const logs = Array.from({ length: n + 1 }, (_, i) => `log ${vkey(`log${i}`, 0x01)}\n`)
    expect(parsePolicy(logs.slice(0, n).join('') + 'quorum none\n').logs).toHaveLength(n)
    rejects(logs.join('') + 'quorum none\n', `line ${n + 1}: more than ${n} logs`)
  })

  it(`accepts ${MAX_POLICY_ENTRIES} witnesses and refuses one more`, () => {
    const witnesses = Array.from({ length: n + 1 }, (_, i) => `witness w${i} ${vkey(`w${i}`, 0x04)}\n`)
    expect(parsePolicy(witnesses.slice(0, n).join('') + 'quorum none\n').witnesses).toHaveLength(n)
    rejects(witnesses.join('') + 'quorum none\n', `line ${n + 1}: more than ${n} witnesses`)
  })

  it(`accepts ${MAX_POLICY_ENTRIES} groups and refuses one more`, () => {
    // A chain of groups, each the only member of the next: g0 = any(w), g(i) = any(g(i−1)).
    const groups = Array.from({ length: n + 1 }, (_, i) => `group g${i} any ${i === 0 ? 'w' : `g${i - 1}`}\n`)
    const withGroups = (k: number) => `witness w ${W.X1!.vkey}\n` + groups.slice(0, k).join('') + `quorum g${k - 1}\n`
    const p = parsePolicy(withGroups(n))
    expect(p.satisfied(new Set(['w']))).toBe(true)
    expect(p.satisfied(new Set())).toBe(false)
    rejects(withGroups(n + 1), `line ${n + 2}: more than ${n} groups`)
  })
})

describe('parsePolicy rules by message (mutation testing, issue 9)', () => {
  const K = W.X1!.vkey
  const messageOf = (text: string): string => {
    try {
      parsePolicy(text)
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyError)
      return (e as Error).message
    }
    throw new Error('parsed')
  }

  it('names the field-count rule of each keyword', () => {
    expect(messageOf('log\nquorum none\n')).toBe('line 1: want "log <vkey> [<url>]"')
    expect(messageOf(`log ${logKey} https://a/ extra\nquorum none\n`)).toBe('line 1: want "log <vkey> [<url>]"')
    expect(messageOf('witness w\nquorum none\n')).toBe('line 1: want "witness <name> <vkey> [<url>]"')
    expect(messageOf(`witness w ${K} https://w/ extra\nquorum none\n`)).toBe('line 1: want "witness <name> <vkey> [<url>]"')
    expect(messageOf(`witness w ${K}\ngroup g any\nquorum g\n`)).toBe('line 2: want "group <name> all|any|<k> <member>..."')
    expect(messageOf('quorum\n')).toBe('line 1: want "quorum <name>|none"')
    expect(messageOf(`witness w ${K}\nquorum w w\n`)).toBe('line 2: want "quorum <name>|none"')
    expect(messageOf(`witness w ${K}\ngroup g any w none\nquorum g\n`)).toBe('line 2: "none" cannot be a group member')
    expect(messageOf('group none any\nquorum none\n')).toBe('line 1: want "group <name> all|any|<k> <member>..."')
    expect(messageOf(`witness w ${K}\ngroup none any w\nquorum none\n`)).toBe('line 2: the name "none" is predefined')
  })

  it('names the key type it wants and the one it got', () => {
    expect(messageOf(`log ${K}\nquorum none\n`)).toBe('line 1: log vkey must have signature type 0x01, got 0x04')
    expect(messageOf(`witness w ${logKey}\nquorum none\n`)).toBe('line 1: witness vkey must have signature type 0x04, got 0x01')
  })

  it('a comment is any line whose first field starts with "#"', () => {
    expect(parsePolicy('#comment\n  #x y\nquorum none\n').quorum).toBe('none')
    expect(messageOf('x#\nquorum none\n')).toBe('line 1: unknown keyword "x#"')
  })

  it('a policy must be a string', () => {
    expect(() => parsePolicy(new String('quorum none\n') as string)).toThrow(new PolicyError('policy is not a string'))
  })

  it('refuses every C0 control character but tab, and DEL; accepts printable ASCII and non-ASCII', () => {
    for (let c = 0; c < 0x20; c++) {
      if (c === 0x09 || c === 0x0a) continue
      expect(messageOf(`# ${String.fromCharCode(c)}\nquorum none\n`), `U+${c.toString(16)}`).toMatch(/^line 1: invalid character/)
    }
    expect(messageOf('# \u007f\nquorum none\n')).toMatch(/^line 1: invalid character/)
    expect(parsePolicy('#\t ~\u0080\u00ff\uffff\nquorum\tnone\n').quorum).toBe('none')
  })

  it('group thresholds are 1..999999 in canonical decimal', () => {
    expect(messageOf(`witness w ${K}\ngroup g 999999 w\nquorum g\n`)).toBe('line 2: group threshold 999999 is larger than its 1 members')
    expect(messageOf(`witness w ${K}\ngroup g 1000000 w\nquorum g\n`)).toBe('line 2: invalid group threshold "1000000"')
    expect(messageOf(`witness w ${K}\ngroup g 1x w\nquorum g\n`)).toBe('line 2: invalid group threshold "1x"')
    expect(parsePolicy(`witness w ${K}\ngroup g 1 w\nquorum g\n`).satisfied(set('w'))).toBe(true)
  })

  it('a log or witness without a URL has no url property', () => {
    const p = parsePolicy(`log ${logKey}\nwitness w ${K}\nquorum w\n`)
    expect(Object.keys(p.logs[0]!)).toEqual(['vkey'])
    expect('url' in p.witnesses[0]!).toBe(false)
  })
})

describe('verifiedWitnesses matches both the key name and the key ID (mutation testing, issue 9)', () => {
  it('a valid cosignature under another name or another key ID does not count', () => {
    const p = parsePolicy(`witness w ${W.X1!.vkey}\nquorum w\n`)
    const sig = W.X1!.cosign(CP5.text, 1700000000)
    expect(verifiedWitnesses(p, note(CP5) + formatSignatureLine(sig))).toEqual(set('w'))
    expect(verifiedWitnesses(p, note(CP5) + formatSignatureLine({ ...sig, name: 'x2.example' }))).toEqual(set())
    expect(verifiedWitnesses(p, note(CP5) + formatSignatureLine({ ...sig, keyId: sig.keyId ^ 1 }))).toEqual(set())
  })
})
