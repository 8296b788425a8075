/**
 * The package version, read from package.json at run time: the one place it is written, shown at
 * `GET /info` and by `ucanlog --version`.
 */
import { readFileSync } from 'node:fs'

/** The `version` of the ucanlog package.json (e.g. `0.1.0`). */
export const VERSION: string = readVersion()

/**
 * Finds package.json above this module: two levels up from `src/server/` when run from source,
 * three from `dist/src/server/` when built.
 * @throws Error when no ucanlog package.json with a version is found (a broken install).
 */
function readVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    let pkg: { name?: unknown; version?: unknown }
    try {
      pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as typeof pkg
    } catch {
      continue
    }
    if (pkg.name === 'ucanlog' && typeof pkg.version === 'string') return pkg.version
  }
  throw new Error('cannot find the ucanlog package.json to read its version')
}
