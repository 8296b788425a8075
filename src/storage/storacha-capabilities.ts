/**
 * The three Storacha capabilities ucanlog needs on a space to store its log there, as
 * `@storacha/capabilities` declares them: `space/blob/add` (store a CAR shard), `space/index/add`
 * (register its index) and `upload/add` (register the upload). An agent delegates them to the
 * service (docs/wire.md, `nb.delegation`); the service checks the delegation grants them the way
 * Storacha will (src/ucan/grants.ts) and invokes them on the space with it (storacha-uploader.ts).
 */
import * as SpaceBlob from '@storacha/capabilities/space/blob'
import * as SpaceIndex from '@storacha/capabilities/space/index'
import * as Upload from '@storacha/capabilities/upload'

/** Storacha's own parsers of the three capabilities, in the order the service checks them. */
export const STORACHA_CAPABILITIES = [SpaceBlob.add, SpaceIndex.add, Upload.add] as const

/** The abilities of {@link STORACHA_CAPABILITIES}: `['space/blob/add', 'space/index/add', 'upload/add']`. */
export const STORACHA_ABILITIES = [SpaceBlob.add.can, SpaceIndex.add.can, Upload.add.can] as const

/** One of {@link STORACHA_ABILITIES}. */
export type StorachaAbility = (typeof STORACHA_ABILITIES)[number]
