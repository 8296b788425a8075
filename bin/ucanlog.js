#!/usr/bin/env node
// The `ucanlog` command. The TypeScript sources are compiled to dist/ by `npm ci` (the prepare script).
import { main } from '../dist/src/cli/main.js'

// An error prints as `ucanlog: <message>` and exits 1. An error that carries its own exit status
// (`exitCode`, e.g. the audit's failed checks: 2) exits with it and prints `ucanlog: <name>: <message>`,
// the name saying which check failed.
main(process.argv).catch((err) => {
  const own = Number.isInteger(err?.exitCode) && err.exitCode > 0
  process.stderr.write(`ucanlog: ${own && err.name ? `${err.name}: ` : ''}${err?.message ?? err}\n`)
  process.exitCode = own ? err.exitCode : 1
})
