/**
 * src/cli/exit-codes.ts in-process: which errors map to which exit code, how a network failure and
 * an HTTP refusal are reported, and the `--json` detection of main.ts.
 */
import { describe, expect, it } from 'vitest'
import { ExitCode, ServiceRefusedError, UsageError, describeError, exitCodeOf, exitStatusHelp, isNetworkError, unreachable } from '../../src/cli/exit-codes.js'
import { wantsJson } from '../../src/cli/main.js'
import { LOG_MISBEHAVED_EXIT_CODE } from '../../src/client/monitor-errors.js'

/** What fetch throws for a refused connection: TypeError('fetch failed') caused by a system error. */
function fetchFailed(code: string, message: string): TypeError {
  return new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code }) })
}

describe('exit codes', () => {
  it('are distinct: 0 ok, 1 usage, 2 refused, 3 verification failed, 4 unreachable, 5 a log misbehaved (monitor)', () => {
    expect(ExitCode).toEqual({ Ok: 0, Usage: 1, Refused: 2, VerificationFailed: 3, Unreachable: 4, LogMisbehaved: 5 })
    expect(ExitCode.LogMisbehaved).toBe(LOG_MISBEHAVED_EXIT_CODE)
  })

  it('an error carrying its own code keeps it; a network failure is 4; an HTTP 4xx/5xx is 2; anything else 1', () => {
    expect(exitCodeOf(new UsageError('x'))).toBe(1)
    expect(exitCodeOf(new ServiceRefusedError({ name: 'Unauthorized', message: 'x' }))).toBe(2)
    expect(exitCodeOf(Object.assign(new Error('forked'), { exitCode: 3 }))).toBe(3)
    expect(exitCodeOf(fetchFailed('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'))).toBe(4)
    expect(exitCodeOf(fetchFailed('ENOTFOUND', 'getaddrinfo ENOTFOUND x.invalid'))).toBe(4)
    expect(exitCodeOf(Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }))).toBe(4)
    expect(exitCodeOf(Object.assign(new Error('Payload Too Large'), { status: 413 }))).toBe(2)
    expect(exitCodeOf(Object.assign(new Error('x'), { status: 302 }))).toBe(1)
    expect(exitCodeOf(Object.assign(new Error('interrupted'), { exitCode: 130 }))).toBe(130)
    expect(exitCodeOf(Object.assign(new Error('x'), { exitCode: 0 }))).toBe(1)
    expect(exitCodeOf(Object.assign(new Error('x'), { exitCode: 256 }))).toBe(1)
    expect(exitCodeOf(Object.assign(new Error('x'), { exitCode: 2.5 }))).toBe(1)
    expect(exitCodeOf(new Error('x'))).toBe(1)
    expect(exitCodeOf('a string')).toBe(1)
  })

  it('isNetworkError looks through causes, and not at answers', () => {
    expect(isNetworkError(new Error('outer', { cause: fetchFailed('ECONNRESET', 'socket hang up') }))).toBe(true)
    expect(isNetworkError(fetchFailed('EACCES', 'permission denied'))).toBe(false)
    expect(isNetworkError(Object.assign(new Error('x'), { status: 503 }))).toBe(false)
  })

  it('unreachable(url, err) names the URL, the cause and the next step', () => {
    const e = unreachable('http://127.0.0.1:1', fetchFailed('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'))
    expect(e).toMatchObject({ name: 'ServiceUnreachable', exitCode: 4, url: 'http://127.0.0.1:1' })
    expect(e.message).toBe('cannot reach the service at http://127.0.0.1:1 (connect ECONNREFUSED 127.0.0.1:1); is `ucanlog serve` running there? check --url / UCANLOG_URL')
  })

  it('describeError names a network failure or an HTTP refusal that came without a code of its own', () => {
    expect(describeError(fetchFailed('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'))).toEqual({
      name: 'ServiceUnreachable',
      message: 'cannot reach the service (connect ECONNREFUSED 127.0.0.1:1); is `ucanlog serve` running there? check --url / UCANLOG_URL',
      exitCode: 4,
    })
    expect(describeError(Object.assign(new Error('Payload Too Large'), { status: 413 }))).toEqual({ name: 'ServiceRefused', message: 'the service answered HTTP 413: Payload Too Large', exitCode: 2 })
    expect(describeError(new ServiceRefusedError({ name: 'Unauthorized', message: 'append refused: Unauthorized: no' }))).toEqual({ name: 'Unauthorized', message: 'append refused: Unauthorized: no', exitCode: 2 })
    expect(describeError(new TypeError('bad'))).toEqual({ name: 'Error', message: 'bad', exitCode: 1 })
  })

  it('exitStatusHelp lists every code, with command-specific lines', () => {
    const h = exitStatusHelp({ 3: 'the log failed a check' })
    expect(h).toMatch(/^\nExit status:\n {2}0 {2}success\n {2}1 {2}usage error/)
    expect(h).toContain('\n  3  the log failed a check\n')
    expect(h).toMatch(/\n {2}4 {2}the service could not be reached/)
    expect(h).not.toMatch(/\n {2}5 /) // only the monitor's help adds it
    expect(exitStatusHelp({ 5: 'the log misbehaved' })).toMatch(/\n {2}4 .*\n {2}5 {2}the log misbehaved\n$/)
  })
})

describe('wantsJson', () => {
  it('is --json before any --', () => {
    expect(wantsJson(['node', 'ucanlog', 'key', 'did', '--json'])).toBe(true)
    expect(wantsJson(['node', 'ucanlog', 'append', '--', '--json'])).toBe(false)
    expect(wantsJson(['node', 'ucanlog', 'append', 'x'])).toBe(false)
    expect(wantsJson(['node', '--json'])).toBe(false)
  })
})
