// The node flags `npm start` gives `ucanlog serve` in a checkout (its package.json "start" script:
// what sits between `node` and `bin/ucanlog.js`), so a benchmark runs serve as production does,
// and an older checkout run beside it as that checkout ran.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** `root`'s npm-start node flags, e.g. ['--max-old-space-size=192', '--single-threaded-gc']; [] if it has none. */
export function npmStartNodeFlags(root) {
  const start = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts?.start ?? ''
  const m = /^node\s+(.*?)\s*bin\/ucanlog\.js\b/.exec(start)
  return m ? m[1].split(/\s+/).filter(Boolean) : []
}

/** The flags in environment variable `name` (split on whitespace) when it is set, even empty; else `root`'s npm-start ones. */
export function nodeFlagsFrom(name, root) {
  const v = process.env[name]
  return v !== undefined ? v.split(/\s+/).filter(Boolean) : npmStartNodeFlags(root)
}
