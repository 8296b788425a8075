// src/storage: where the log's bytes go — a local file store, UnixFS encoding, CAR packing.
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
  readFile,
  type ReadFileOptions,
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
