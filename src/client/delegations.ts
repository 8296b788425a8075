/**
 * Delegations in `ucanlog/client`: the `storacha delegation create --base64` text format
 * (docs/wire.md `nb.delegation`), parsed as a file or a paste holds it.
 */
import type { API } from '@ucanto/core'
import { parseDelegationText } from '../ucan/delegation.js'
import { InvalidDelegationError } from './errors.js'

/**
 * Parses a delegation in either string form `nb.delegation` accepts (docs/wire.md): the multibase
 * CAR-CID form `storacha delegation create --base64` and `ucanlog delegate` print, or plain padded
 * base64 of the archive, surrounding whitespace ignored (a file's trailing newline, CRLF, spaces).
 * Does not check signatures or time bounds (the service does).
 * @throws InvalidDelegationError (its `reason`: `InvalidDelegation`, `DuplicateProof`, `ProofCycle`
 *   or `ProofGraphTooLarge`) when the text is not one, or breaks the chain bounds.
 */
export async function parseDelegation(text: string): Promise<API.Delegation> {
  const parsed = await parseDelegationText(text)
  if (parsed.error) throw new InvalidDelegationError(`not a delegation: ${parsed.error.message}`, parsed.error.name)
  return parsed.ok
}
