/**
 * ucanlog's UCAN layer: capability declarations, named failures, the node:crypto principal,
 * the delegation string format, authorization (the invocation, the Storacha grants, revocation),
 * replay protection, admission, the ucanto service and its wire results, and client helpers.
 * See docs/wire.md.
 */
export * from './capabilities.js'
export * from './errors.js'
export * from './principal.js'
export * from './delegation.js'
export * from './proof-graph.js'
export * from './response-budget.js'
export * from './revocation.js'
export * from './replay.js'
export * from './clock.js'
export * from '../storage/storacha-capabilities.js'
export * from './invocation.js'
export * from './attester.js'
export * from './authorization-failure.js'
export * from './grants.js'
export * from './verified-ucans.js'
export * from './chain.js'
export * from './signed-payload.js'
export * from './authorize.js'
export * from './admission.js'
export * from './log-service.js'
export * from './wire.js'
export type { HandlerContext, UcanLogger } from './handlers/context.js'
export * from './service.js'
export * from './client.js'
export * from './store.js'
export * from './sqlite-revocations.js'
export * from './sqlite-replay.js'
