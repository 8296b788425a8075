// A Stryker ignorer: the human-readable text of an error (the message passed to `new SomeError(…)`,
// or a `message:` property) is documentation, not a check. Tests assert an error's NAME (class or
// `name` field), which the mutants of the check itself still cover; mutating the prose would only
// measure whether tests pin wording. Error classes are found by scanning the sources, so a new error
// class is covered without editing this file.
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PluginKind, declareValuePlugin } from '@stryker-mutator/api/plugin'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Names of classes that derive from Error, directly or through other classes of ours. */
function errorClasses() {
  const parent = new Map()
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (p.endsWith('.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/class (\w+) extends (\w+)/g)) parent.set(m[1], m[2])
      }
    }
  }
  walk(join(root, 'src'))
  walk(join(root, 'witness'))
  const isError = (name, seen = new Set()) =>
    name === 'Error' || name === 'TypeError' || name === 'RangeError' ||
    (parent.has(name) && !seen.has(name) && isError(parent.get(name), seen.add(name)))
  return new Set([...parent.keys(), 'Error', 'TypeError', 'RangeError'].filter((n) => isError(n)))
}

const ERRORS = errorClasses()
const isText = (path) => path.isStringLiteral() || path.isTemplateLiteral()

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'error-messages', {
    shouldIgnore(path) {
      if (!isText(path)) return undefined
      const parent = path.parentPath
      if (parent?.isNewExpression() && parent.node.callee.type === 'Identifier' && ERRORS.has(parent.node.callee.name)) {
        return `message text of ${parent.node.callee.name} (tests assert the error's name)`
      }
      if (parent?.isObjectProperty() && !parent.node.computed && parent.node.key.type === 'Identifier' && parent.node.key.name === 'message') {
        return 'error message text (tests assert the error name)'
      }
      return undefined
    },
  }),
]
