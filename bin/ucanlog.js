#!/usr/bin/env node
// The `ucanlog` command. The TypeScript sources are compiled to dist/ by `npm ci` (the prepare script).
import { run } from '../dist/src/cli/main.js'

// Exit status: 0 ok, 1 usage or other error, 2 refused by the service, 3 verification failed,
// 4 the service unreachable, 5 a log misbehaved (`monitor`) (src/cli/exit-codes.ts). An error prints as `ucanlog: <name>: <message>`
// on stderr, or under --json as {"error":{"name","message","exitCode"}} on stdout; never a stack trace.
process.exitCode = await run(process.argv)
