/**
 * Installing the packed tarball into a fresh project as a user would, without the network: npm
 * needs a lockfile to install offline (with one, every package comes from the npm cache by its
 * integrity; without one it asks the registry for package metadata, which `npm ci` never cached).
 * The lockfile is derived from this repository's package-lock.json: the same versions, integrity
 * and layout `npm ci` put in the cache.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** One entry of a lockfile v3 `packages` map. */
interface LockEntry {
  version?: string
  resolved?: string
  integrity?: string
  dev?: boolean
  optional?: boolean
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  [k: string]: unknown
}

/** A package.json, as far as installing reads it. */
export interface Manifest {
  name: string
  version?: string
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
  [k: string]: unknown
}

/**
 * The lock path a package `name` required from the package at `from` resolves to (Node's lookup:
 * the nearest `node_modules/<name>` going up), or undefined when the lock has none.
 */
function resolveIn(packages: Record<string, LockEntry>, from: string, name: string): string | undefined {
  let dir = from
  for (;;) {
    const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`
    if (packages[candidate]) return candidate
    if (dir === '') return undefined
    const cut = dir.lastIndexOf('/node_modules/')
    dir = cut < 0 ? '' : dir.slice(0, cut)
  }
}

/**
 * Writes `<project>/package-lock.json` for `project` (its manifest: `ucanlog` as a `file:` tarball
 * dependency, other dependencies at versions this repository's lock holds): ucanlog's entry from
 * `ucanlog` (the packed package.json), then every package reachable from the project's and
 * ucanlog's dependencies, copied from `repoLock` with its layout.
 * @throws Error naming a dependency the repository's lock does not hold (it could not install offline).
 */
export async function writeOfflineLock(projectDir: string, project: Manifest, ucanlog: Manifest & { bin?: unknown; engines?: unknown }, tarball: string, repoLockFile: string): Promise<void> {
  const repo = JSON.parse(await readFile(repoLockFile, 'utf8')) as { packages: Record<string, LockEntry> }
  const out: Record<string, LockEntry> = {
    '': { name: project.name, version: project.version, dependencies: project.dependencies, devDependencies: project.devDependencies },
    'node_modules/ucanlog': { version: ucanlog.version, resolved: `file:${tarball}`, dependencies: ucanlog.dependencies, bin: ucanlog.bin, engines: ucanlog.engines },
  }
  const dev = new Set(Object.keys(project.devDependencies ?? {}))
  const queue: { from: string; name: string; optional: boolean }[] = [
    ...Object.keys(ucanlog.dependencies ?? {}).map((name) => ({ from: 'node_modules/ucanlog', name, optional: false })),
    ...Object.keys(project.devDependencies ?? {}).map((name) => ({ from: '', name, optional: false })),
  ]
  while (queue.length > 0) {
    const { from, name, optional } = queue.shift()!
    const path = resolveIn(repo.packages, from === 'node_modules/ucanlog' ? '' : from, name)
    if (path === undefined) {
      if (optional) continue
      throw new Error(`${name} (needed by ${from || 'the project'}) is not in the repository's package-lock.json`)
    }
    if (out[path]) continue
    const entry: LockEntry = { ...repo.packages[path]! }
    delete entry.dev
    if (from === '' && dev.has(name)) entry.dev = true
    out[path] = entry
    for (const dep of Object.keys(entry.dependencies ?? {})) queue.push({ from: path, name: dep, optional: false })
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) queue.push({ from: path, name: dep, optional: true })
  }
  await writeFile(join(projectDir, 'package-lock.json'), JSON.stringify({ name: project.name, version: project.version, lockfileVersion: 3, requires: true, packages: out }, null, 2) + '\n')
}
