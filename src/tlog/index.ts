/**
 * The pure transparency-log core: RFC 6962 Merkle trees and the C2SP tlog formats
 * (signed-note, tlog-checkpoint, tlog-cosignature, tlog-tiles, tlog-policy). No I/O, clock, env
 * or randomness.
 */
export {
  HASH_SIZE,
  type Hash,
  EMPTY_ROOT,
  leafHash,
  nodeHash,
  parentRow,
  type HashReader,
  storedHashIndex,
  splitStoredHashIndex,
  storedHashCount,
  storedHashes,
  treeHash,
  MemoryHashStore,
  equalBytes,
} from './hash.js'
export * from './tile.js'
export * from './bundle.js'
export * from './proof.js'
export * from './encoding.js'
export * from './note.js'
export * from './checkpoint.js'
export * from './cosignature.js'
export * from './policy.js'
