/**
 * Entry sources for appends (issue 12 "bytes in, bytes stored"): an entry is bytes, taken exactly
 * as given. Arguments are UTF-8 text; lines (stdin, `--file F --lines`) are split on `\n` only and
 * read chunk by chunk, never the whole input at once; a file can be one entry of raw bytes.
 * Everything is checked locally before it is sent: text must be UTF-8 (never replaced by U+FFFD),
 * base64 must be strict, and an entry is at most {@link MAX_ENTRY_SIZE} bytes (65,535, the
 * c2sp.org/tlog-tiles entry bundle limit), a longer line refused as soon as it passes the limit.
 */
import { open, stat } from 'node:fs/promises'
import { MAX_ENTRY_SIZE } from '../tlog/bundle.js'
import { MalformedBase64Error, decodeBase64 } from '../tlog/encoding.js'
import { ExitCode, UcanlogError } from './errors.js'

export { MAX_ENTRY_SIZE }

/** One entry of an input, with where it came from (for messages and the journal). */
export interface SourceEntry {
  /** 0-based position among the input's entries (skipped empty lines do not count). */
  position: number
  /** 1-based line number in the input, or argument number for arguments; 1 for a whole file. */
  line: number
  /** The entry: 1..{@link MAX_ENTRY_SIZE} bytes. */
  bytes: Uint8Array
}

/** How lines are read: `text` (UTF-8, checked) or `base64` (one strict standard base64 entry per line). */
export type LineFormat = 'text' | 'base64'

/** Input that cannot be appended as given, found before it is sent. Exit code 1 (the input, not the service). */
export abstract class EntryInputError extends UcanlogError {
  /** @param line 1-based line or argument number (1 for a whole file). */
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message, ExitCode.Usage)
  }
}

/** Text input (an argument or a line) that is not valid UTF-8. */
export class InvalidUtf8Error extends EntryInputError {
  override name = 'InvalidUtf8'
}

/** A `--base64` line that is not strict padded standard base64 (RFC 4648 §4). */
export class InvalidBase64Error extends EntryInputError {
  override name = 'InvalidBase64'
}

/** An entry (line, argument or file) longer than {@link MAX_ENTRY_SIZE} bytes (or empty, for a file or argument). */
export class EntryTooLargeError extends EntryInputError {
  override name = 'EntryTooLarge'
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Whether `bytes` are valid UTF-8 (no replacement: invalid sequences make it false). */
export function isUtf8(bytes: Uint8Array): boolean {
  try {
    utf8.decode(bytes)
    return true
  } catch {
    return false
  }
}

/**
 * The entries of command-line arguments, each its UTF-8 bytes. Node decodes argv bytes that are
 * not UTF-8 as U+FFFD, so an argument containing U+FFFD is refused rather than stored changed.
 * @throws InvalidUtf8Error `argument N is not valid UTF-8; use --base64 or --file`.
 * @throws EntryTooLargeError if an argument is over {@link MAX_ENTRY_SIZE} bytes.
 */
export function entriesFromArguments(args: readonly string[]): SourceEntry[] {
  return args.map((a, i) => {
    if (a.includes('\uFFFD')) throw new InvalidUtf8Error(`argument ${i + 1} is not valid UTF-8; use --base64 or --file`, i + 1)
    const bytes = new TextEncoder().encode(a)
    if (bytes.length === 0) throw new InvalidUtf8Error(`argument ${i + 1} is empty; an entry is 1..${MAX_ENTRY_SIZE} bytes`, i + 1)
    if (bytes.length > MAX_ENTRY_SIZE) throw new EntryTooLargeError(`argument ${i + 1} is ${bytes.length} bytes, longer than ${MAX_ENTRY_SIZE} bytes; split it`, i + 1)
    return { position: i, line: i + 1, bytes }
  })
}

/**
 * A whole file as one entry of raw bytes (no decoding). Its size is checked with `stat` before
 * anything is read.
 * @throws EntryTooLargeError if the file is empty or over {@link MAX_ENTRY_SIZE} bytes.
 * @throws the `fs` error (ENOENT, EACCES…) if it cannot be read.
 */
export async function entryFromFile(path: string): Promise<SourceEntry> {
  const { size } = await stat(path)
  if (size > MAX_ENTRY_SIZE) throw new EntryTooLargeError(`${path} is ${size} bytes, longer than ${MAX_ENTRY_SIZE} bytes (one entry); use --lines to append one entry per line`, 1)
  if (size === 0) throw new EntryTooLargeError(`${path} is empty; an entry is 1..${MAX_ENTRY_SIZE} bytes`, 1)
  const fh = await open(path)
  try {
    const bytes = new Uint8Array(size)
    let read = 0
    while (read < size) {
      const { bytesRead } = await fh.read(bytes, read, size - read, read)
      if (bytesRead === 0) break
      read += bytesRead
    }
    return { position: 0, line: 1, bytes: bytes.subarray(0, read) }
  } finally {
    await fh.close()
  }
}

/**
 * The entries of a byte stream of lines (stdin, a file with `--lines`), read chunk by chunk: lines
 * end at `\n` only (a `\r` before it stays part of the entry), the last line need not end in `\n`,
 * and empty lines are skipped (their line numbers still count). With `text` each line must be
 * UTF-8 and is stored as its bytes; with `base64` each line is strict padded standard base64 and
 * the decoded bytes are stored. At most one line (≤ the limit) is held in memory.
 * @param input chunks of bytes (a Node readable stream is one).
 * @throws (from the iterator) InvalidUtf8Error, InvalidBase64Error or EntryTooLargeError naming the
 *   line, as soon as that line is read; a too-long line as soon as it passes the limit.
 */
export async function* entriesFromLines(input: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>, format: LineFormat = 'text'): AsyncGenerator<SourceEntry> {
  // Longest line accepted: an entry's bytes, or its base64 (4 characters per 3 bytes, padded).
  const maxLine = format === 'base64' ? 4 * Math.ceil(MAX_ENTRY_SIZE / 3) : MAX_ENTRY_SIZE
  let parts: Buffer[] = []
  let length = 0
  let line = 0
  let position = 0
  const finish = (): SourceEntry | undefined => {
    line++
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, length)
    parts = []
    length = 0
    if (bytes.length === 0) return undefined
    return { position: position++, line, bytes: decodeLine(bytes, format, line) }
  }
  const tooLong = () =>
    new EntryTooLargeError(
      format === 'base64'
        ? `line ${line + 1} is longer than ${maxLine} base64 characters (an entry is at most ${MAX_ENTRY_SIZE} bytes); nothing of it was sent`
        : `line ${line + 1} is longer than ${MAX_ENTRY_SIZE} bytes; nothing of it was sent (split it, or append a file of at most ${MAX_ENTRY_SIZE} bytes with --file)`,
      line + 1,
    )
  for await (const raw of input) {
    let chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a)) {
      if (length + nl > maxLine) throw tooLong()
      // Copy: the stream may reuse its buffer, and a held line must not pin a large chunk.
      parts.push(Buffer.from(chunk.subarray(0, nl)))
      length += nl
      const entry = finish()
      if (entry) yield entry
      chunk = chunk.subarray(nl + 1)
    }
    if (chunk.length > 0) {
      if (length + chunk.length > maxLine) throw tooLong()
      parts.push(Buffer.from(chunk))
      length += chunk.length
    }
  }
  if (length > 0) {
    const entry = finish()
    if (entry) yield entry
  }
}

function decodeLine(bytes: Buffer, format: LineFormat, line: number): Uint8Array {
  if (format === 'base64') {
    const text = bytes.toString('latin1')
    let out: Uint8Array
    try {
      out = decodeBase64(text)
    } catch (err) {
      if (!(err instanceof MalformedBase64Error)) throw err
      throw new InvalidBase64Error(`line ${line} is not strict padded standard base64 (${err.message}); encode each entry with \`base64 -w0\``, line)
    }
    if (out.length > MAX_ENTRY_SIZE) throw new EntryTooLargeError(`line ${line} decodes to ${out.length} bytes, longer than ${MAX_ENTRY_SIZE} bytes`, line)
    if (out.length === 0) throw new InvalidBase64Error(`line ${line} decodes to no bytes; an entry is 1..${MAX_ENTRY_SIZE} bytes`, line)
    return new Uint8Array(out)
  }
  if (!isUtf8(bytes)) throw new InvalidUtf8Error(`line ${line} is not valid UTF-8; use --base64 or --file for binary data`, line)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
