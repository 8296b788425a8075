/**
 * ucanlog's UCAN layer: capability declarations, named failures, the node:crypto principal,
 * the delegation string format, authorization (delegation chains, revocation), replay protection,
 * the ucanto service, and client helpers. See DESIGN.md "UCAN RPC".
 */
export * from './capabilities.js'
export * from './errors.js'
export * from './principal.js'
export * from './delegation.js'
export * from './proof-graph.js'
export * from './response-budget.js'
export * from './revocation.js'
export * from './replay.js'
export * from './authorize.js'
export * from './service.js'
export * from './client.js'
export * from './store.js'
