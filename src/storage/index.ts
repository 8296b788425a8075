// src/storage: where the log's bytes go — a local file store, UnixFS encoding, CAR packing, uploads to Storacha.
// Knows no Merkle math (never imports src/tlog).

export { checkRelativePath, FileStore, InvalidPathError, MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from './file-store.js'
export {
  type Block,
  type BlockGetter,
  CHUNK_SIZE,
  createBlock,
  DAG_PB_CODE,
  DEFAULT_MAX_READ_SIZE,
  type DirectoryEntry,
  encodeDirectory,
  encodeFile,
  type EncodedDirectory,
  type EncodedFile,
  InvalidBlockError,
  MAX_FILE_LINKS,
  MissingBlockError,
  RAW_CODE,
  readUnixfsFile,
  type ReadUnixfsFileOptions,
  SHA2_256_CODE,
  verifyBlock,
} from './unixfs.js'
export {
  CAR_CODE,
  carFileName,
  CarPacker,
  type CarPackerOptions,
  encodeCar,
  INDEX_FILE,
  type PackFaultPoint,
  PackerClosedError,
  type PackResult,
  StaleTreeSizeError,
  TREE_SIZE_DIGITS,
} from './car-packer.js'
export { type WalkedEntry, walkDirectory, HAMT_FANOUT, MURMUR3_X64_64_CODE, SHARD_THRESHOLD, type ShardCache, DEFAULT_SHARD_CACHE_BYTES, sharedShardCache } from './unixfs.js'
export {
  UPLOAD_QUEUE_FILE,
  UploadQueue,
  type UploadError,
  type UploadJob,
  type UploadStatus,
  expiryOf,
} from './upload-queue.js'
export {
  DEFAULT_CLIENT_RETRIES,
  DEFAULT_RECEIPTS_ENDPOINT,
  DEFAULT_STORACHA_DID,
  DEFAULT_STORACHA_URL,
  DEFAULT_UPLOAD_CONCURRENCY,
  DEFAULT_UPLOAD_RETRY_MAX_MS,
  DEFAULT_UPLOAD_RETRY_MIN_MS,
  StorachaUploader,
  type StorachaTarget,
  type StorachaUploaderOptions,
  type UploadedEvent,
  classifyUploadError,
} from './storacha-uploader.js'
export { UploadingBackend, type UploadingArchive } from './uploading-backend.js'
// The local Storacha of the tests and the demo is test/helpers/local-storacha.ts (it imports devDependencies).
