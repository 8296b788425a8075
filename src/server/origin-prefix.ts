/**
 * The origin prefix of a service's logs (origins are `<prefix>/logs/<spaceDID>` and
 * `<prefix>/revocations`), decided once per data directory and kept in `<data>/origin-prefix`.
 *
 * c2sp.org/tlog-checkpoint: the origin is the unique identifier of a log (it SHOULD be a
 * schema-less URL, e.g. `example.com/log42`), and a witness keeps one tree per origin: two services
 * signing the same origin with different keys look to a witness like one log whose key changed, and
 * it refuses the second one's checkpoints forever. So the default prefix is derived from the
 * service key, unique per key and host-like: `<16 base32 chars>.ucanlog.local`. An explicit
 * `--origin-prefix` (ideally a host name the operator controls) is used as given. Either way the
 * prefix is stored on first start and never changes for that data directory: a log's origin never
 * changes.
 */
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { base32 } from 'multiformats/bases/base32'

/** The `--origin-prefix` value meaning "the data directory's, else derived from the service key". */
export const AUTO_ORIGIN_PREFIX = 'auto'

/** The prefix every data directory used before the default was derived from the key (issue 12 item 6). */
export const LEGACY_ORIGIN_PREFIX = 'ucanlog'

/** The file in the data directory holding its origin prefix (one line). */
export const ORIGIN_PREFIX_FILE = 'origin-prefix'

/** Domain of the derived prefixes (`.local`, as the bundled witness's default name `ucanlog.local/witness`). */
export const DERIVED_ORIGIN_DOMAIN = 'ucanlog.local'

/** Where a service's origin prefix came from. */
export type OriginPrefixSource = 'stored' | 'configured' | 'derived' | 'legacy'

/** A prefix that contradicts the data directory's (a log's origin never changes). */
export class OriginPrefixConflictError extends Error {
  override name = 'OriginPrefixConflict'
}

/** A prefix no origin can have (c2sp.org/tlog-checkpoint: no whitespace or `+`; ours: no trailing `/`). */
export class InvalidOriginPrefixError extends Error {
  override name = 'InvalidOriginPrefix'
}

/**
 * The default prefix of the service whose Ed25519 public key is `publicKey` (32 bytes):
 * `<first 10 bytes of SHA-256(publicKey), base32 lowercase (16 chars)>.ucanlog.local`. 80 bits,
 * so two keys collide with negligible probability.
 */
export function derivedOriginPrefix(publicKey: Uint8Array): string {
  const digest = createHash('sha256').update(publicKey).digest()
  return `${base32.baseEncode(digest.subarray(0, 10))}.${DERIVED_ORIGIN_DOMAIN}`
}

/**
 * Whether `prefix` looks like a schema-less URL as c2sp.org/tlog-checkpoint recommends: a DNS host
 * name of at least two labels (letters, digits, hyphens; an optional port), then an optional path.
 * `ucanlog` or `test` are not; `log.example.com` and `example.com/ucanlog` are.
 */
export function isHostLike(prefix: string): boolean {
  const [host, ...path] = prefix.split('/')
  const label = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?'
  if (!new RegExp(`^${label}(?:\\.${label})+(?::[0-9]{1,5})?$`, 'i').test(host!)) return false
  return path.every((seg) => seg.length > 0 && !/[\s+]/u.test(seg))
}

/**
 * Decides the origin prefix of the service on `dataDir` and stores it there on first use.
 * - `<data>/origin-prefix` exists: its prefix; a configured one that differs is refused.
 * - else a configured prefix (not {@link AUTO_ORIGIN_PREFIX}) is used;
 * - else a data directory whose service key existed before this start (`keyCreated` false) was
 *   written before prefixes were stored, under {@link LEGACY_ORIGIN_PREFIX}, and keeps it;
 * - else (a fresh data directory) {@link derivedOriginPrefix} of the service key.
 * @param publicKey the service's Ed25519 public key, 32 bytes.
 * @returns the prefix, where it came from, and a warning when it is not {@link isHostLike}.
 * @throws OriginPrefixConflictError naming both prefixes and the file; InvalidOriginPrefixError for a
 *   configured prefix with whitespace, `+` or a trailing `/` (checked before anything is stored).
 */
export async function decideOriginPrefix(o: { dataDir: string; configured: string; publicKey: Uint8Array; keyCreated: boolean }): Promise<{
  prefix: string
  source: OriginPrefixSource
  warning?: string
}> {
  const file = join(o.dataDir, ORIGIN_PREFIX_FILE)
  const stored = await readFile(file, 'utf8').then(
    (s) => s.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    },
  )
  const explicit = o.configured !== AUTO_ORIGIN_PREFIX ? o.configured : undefined
  if (explicit !== undefined && (!/^[^\s+]+$/u.test(explicit) || explicit.endsWith('/'))) {
    throw new InvalidOriginPrefixError(`--origin-prefix ${JSON.stringify(explicit)} cannot start an origin: no whitespace, "+" or trailing "/"; e.g. log.example.com`)
  }
  let prefix: string
  let source: OriginPrefixSource
  if (stored !== undefined && stored !== '') {
    if (explicit !== undefined && explicit !== stored) {
      throw new OriginPrefixConflictError(
        `--origin-prefix ${JSON.stringify(explicit)} differs from ${JSON.stringify(stored)}, the prefix of the logs in this data directory (${file}); ` +
          "a log's origin never changes: drop --origin-prefix / UCANLOG_ORIGIN_PREFIX, or use a fresh --data",
      )
    }
    ;[prefix, source] = [stored, 'stored']
  } else {
    if (explicit !== undefined) [prefix, source] = [explicit, 'configured']
    else if (!o.keyCreated) [prefix, source] = [LEGACY_ORIGIN_PREFIX, 'legacy']
    else [prefix, source] = [derivedOriginPrefix(o.publicKey), 'derived']
    await writeFile(file, prefix + '\n', { flag: 'wx' })
  }
  const warning = isHostLike(prefix)
    ? undefined
    : `the origin prefix ${JSON.stringify(prefix)} is not a host-like name (c2sp.org/tlog-checkpoint: an origin names one log, ideally a schema-less URL such as log.example.com); ` +
      'another service using it would sign the same origins with another key, and a witness that knows one refuses the other forever' +
      (source === 'configured' ? '; choose a host name you control with --origin-prefix' : '')
  return { prefix, source, ...(warning && { warning }) }
}
