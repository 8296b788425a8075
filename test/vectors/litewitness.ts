/**
 * Interop vectors from torchwood cmd/litewitness/testdata/litewitness.txt and values derived from
 * it. Provenance: test/vectors/PROVENANCE.md ("Signed notes, cosignatures, policies, litewitness").
 */

/** The Sigsum-style log of the litewitness test. */
export const LOG = {
  origin: 'sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562',
  vkey: 'sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562+5202289b+Af/cLU2Y5BJNP+r3iMDC+av9eWCD0fBJVDfzAux5zxAP',
  publicKeyHex: 'ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f',
  /** [computed] HKDF-SHA256(gentest seed, salt "litewitness gentest")[0:32]. */
  seedHex: 'b530aa8b9dc78a551b183d23a2ac44cba31162cbcc23056fff1d062b3ae149ef',
  /** [computed] */
  skey: 'PRIVATE+KEY+sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562+5202289b+AbUwqoudx4pVGxg9I6KsRMujEWLLzCMFb/8dBis64Unv',
} as const

const sig = (b64: string) => `— ${LOG.origin} ${b64}\n`
const cp = (size: number, root: string) => `${LOG.origin}\n${size}\n${root}\n`

/** Checkpoint texts and the log's signature lines over them. */
export const CP1 = { text: cp(1, 'KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), sig: sig('UgIom7fPZTqpxWWhyjWduBvTvGVqsokMbqTArsQilegKoFBJQjUFAmQ0+YeSPM3wfUQMFSzVnnNuWRTYrajXpNUbIQY=') }
export const CP3 = { text: cp(3, 'RcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0='), sig: sig('UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6go=') }
export const CP5 = { text: cp(5, 'QrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY='), sig: sig('UgIomw/EOJmWi0i1FQsOj+etB7F8IccFam/jgd6wzRns4QPVmyEZtdvl1U2KEmLOZ/ASRcWJi0tW90dJWAShei7sDww=') }
/** litewitness.txt's corrupted signature on CP3: `…WVrx6gx=` for `…WVrx6go=` (non-canonical base64). */
export const CP3_BITFLIP_SIG = sig('UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6gx=')

export const note = (c: { text: string; sig: string }) => `${c.text}\n${c.sig}`

/** Consistency proofs (x/mod order). */
export const PROOF_1_3 = ['KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=']
export const PROOF_1_5 = ['KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', '+fUDV+k970B4I3uKrqJM4aP1lloPZP8mvr2Z4wRw2LI=', 'KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=']
export const PROOF_3_5 = [
  'KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  'KgMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  'wgiIFdZfYNv6WU1OllBKsWnLYIS/DBMqt8Uh/S4OukE=',
  'KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
]

/** The litewitness test witness and its cosignature over CP5 at T=1679315147 ([computed]). */
export const WITNESS = {
  name: 'example.com/witness',
  seedHex: '31ffc2116ecbe003acaa800ab70757bd7d53206e3febef6a6d0796d95530b34f',
  publicKeyHex: '64848ad8abed6e85981b3b3875b252b8767ebb4b02f703aca3b1e71bbd6a8e50',
  vkey: 'example.com/witness+10a1c019+BGSEitir7W6FmBs7OHWyUrh2frtLAvcDrKOx5xu9ao5Q',
  /** The same key as a type 0x01 note key: NOT a cosigner vkey. */
  vkeyType01: 'example.com/witness+05828f80+AWSEitir7W6FmBs7OHWyUrh2frtLAvcDrKOx5xu9ao5Q',
  timestamp: 1679315147,
  cp5CosigLine: '— example.com/witness EKHAGQAAAABkGFDLBPkKNZFw49ZCQrVn7T5dfwKcHbmx3GEZkmJUXhZwdfd15uO+pAOz8N3/OhMgIB1+wM6wumhne7KwX1hpczoWBw==\n',
} as const

/** The C2SP tlog-cosignature example line; timestamp bytes 00000000641850CB = 1679315147. */
export const C2SP_COSIG_LINE = '— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n'
