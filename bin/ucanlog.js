#!/usr/bin/env node
// The `ucanlog` command. The TypeScript sources are compiled to dist/ by `npm ci` (the prepare script).
import { main } from '../dist/src/cli/main.js'

main(process.argv).catch((err) => {
  process.stderr.write(`ucanlog: ${err?.message ?? err}\n`)
  process.exitCode = 1
})
