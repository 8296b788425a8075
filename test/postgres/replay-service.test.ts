/**
 * Two UCAN services (two instances: one pool, one PgReplayGuard and one PgRevocations each) on one
 * database in front of one log: the same signed append sent to both at once is appended once and
 * both answer its one result; a revocation recorded through one refuses the chain on the other.
 */
import { describe, expect, test } from 'vitest'
import {
  PgReplayGuard,
  PgRevocations,
  REPLAY_MIGRATIONS,
  REVOCATION_MIGRATIONS,
  appendInvocation,
  createUcanService,
  delegateSpaceToAgent,
} from '../../src/ucan/index.js'
import { RecordingLog, now, principals, send } from '../ucan/helpers.js'
import { usePostgres } from '../helpers/postgres.js'
import { databaseWith } from './schema.js'

const db = usePostgres()

describe('UCAN services on one database', () => {
  test('the same invocation sent to two instances at once: appended once, the same result from both; a later replay on either: that result', async () => {
    const url = await databaseWith(db.server(), [...REPLAY_MIGRATIONS, ...REVOCATION_MIGRATIONS])
    const P = await principals()
    const log = new RecordingLog() // the log both instances append to
    const guards: PgReplayGuard[] = []
    const instance = async () => {
      const pool = db.pool(url)
      const replay = await PgReplayGuard.open(pool)
      guards.push(replay)
      return createUcanService({ signer: P.service, log, replay, revocations: new PgRevocations(pool, now) })
    }
    const [a, b] = [await instance(), await instance()]
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 600 })
    const invocation = await (
      await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([7]), spaceToAgent })
    ).delegate()
    const [onA, onB] = await Promise.all([send(a, invocation), send(b, invocation)])
    expect(onA.ok).toBeDefined()
    expect(onB).toEqual(onA)
    expect(log.calls).toBe(1)
    expect(await send(b, invocation)).toEqual(onA)
    expect(await send(a, invocation)).toEqual(onA)
    expect(log.calls).toBe(1)

    // Revoked through a's store: b refuses the chain at once.
    await new PgRevocations(db.pool(url), now).record({
      ucan: spaceToAgent.cid.toString(),
      scope: P.space.did(),
      revoker: P.space.did(),
      invocation: 'bafyrevoke',
      time: now(),
    })
    const next = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([8]), spaceToAgent })).delegate()
    expect((await send(b, next)).error?.name).toBe('Revoked')
    expect(log.calls).toBe(1)
    await Promise.all(guards.map((g) => g.close()))
  })
})
