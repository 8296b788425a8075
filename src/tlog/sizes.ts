/** Size of a SHA-256 hash in bytes (RFC 6962 §2.1 uses SHA-256 throughout). */
export const HASH_SIZE_BYTES = 32
