/**
 * Capability parsers that read exactly as the ones they copy, without building an error object
 * for every absent optional caveat.
 *
 * ucanto's `Schema.optional(inner)` reads `inner` first and, when that fails and the input is
 * `undefined`, answers `{ ok: undefined }`: an absent optional link (`space/index/add`'s
 * `nb.content`) or array (`upload/add`'s `nb.shards`) costs a `SchemaError`/`TypeError` — an
 * Error with a captured stack trace — on every parse, success or not. The direct chain check
 * (chain.ts) parses each Storacha capability several times per append (the probe, then every
 * source offered to it), so these errors were a visible share of an append's CPU.
 * {@link leanParser} copies a parser with each such optional field answering `undefined` for
 * `undefined` at once; whenever `inner` fails on `undefined` (checked once, when the copy is made)
 * that is exactly what ucanto's optional answers, and every other input goes to `inner` as before,
 * so the copy accepts and refuses the same capabilities with the same results and messages.
 */
import type { API } from '@ucanto/core'
import { Schema, capability } from '@ucanto/validator'

/** ucanto's `Optional` schema class (not exported by ucanto; taken from an instance). */
const Optional = Object.getPrototypeOf(Schema.string().optional()).constructor as abstract new (...args: never[]) => unknown
/** ucanto's `Struct` schema class (not exported by ucanto; taken from an instance). */
const Struct = Object.getPrototypeOf(Schema.struct({})).constructor as abstract new (...args: never[]) => unknown

/** A schema reader, as ucanto calls it (`read(input)` → `{ ok }` or `{ error }`). */
type Reader = API.Reader<unknown, unknown>

/**
 * `Schema.optional(inner)` for an `inner` known to fail on `undefined`: `undefined` reads as
 * `{ ok: undefined }` without calling `inner` (ucanto's optional calls it and discards the error
 * it builds); any other input is `inner`'s answer, as in ucanto.
 */
class LeanOptional extends Schema.API<unknown, unknown, Reader> {
  override readWith(input: unknown, inner: Reader): API.Result<unknown, API.Failure> {
    return (input === undefined ? { ok: undefined } : inner.read(input)) as API.Result<unknown, API.Failure>
  }
  override toString(): string {
    return `${String(this.settings)}.optional()`
  }
  override optional(): this {
    return this
  }
}

/**
 * `schema` if it is not one of ucanto's optional schemas or its inner schema accepts `undefined`
 * (its answer then matters); otherwise the equivalent {@link LeanOptional}.
 */
export function leanOptional<S>(schema: S): S {
  if (!(schema instanceof Optional)) return schema
  const inner = (schema as unknown as { settings: Reader }).settings
  if (inner.read(undefined).error === undefined) return schema
  return new LeanOptional(inner) as unknown as S
}

/**
 * A struct schema reading as `schema` (ucanto's `Struct.readWith`: each field of the shape in
 * order, the first failing field's member error, `undefined` values left out), with each optional
 * field replaced by {@link leanOptional}. Any other schema is returned as is.
 */
export function leanStruct<S>(schema: S): S {
  if (!(schema instanceof Struct)) return schema
  const shape = (schema as unknown as { shape: Record<string, Reader> }).shape
  const lean = Object.fromEntries(Object.entries(shape).map(([key, field]) => [key, leanOptional(field)]))
  return Schema.struct(lean) as unknown as S
}

/**
 * A copy of ucanto capability parser `parser` (same `can`, `with` schema and `derives`) whose
 * caveat schema is {@link leanStruct} of its own: `match` and `select` give the same results as
 * `parser`'s on every input, without an error object per absent optional caveat.
 */
export function leanParser<P>(parser: P): P {
  const { descriptor } = parser as unknown as { descriptor: { can: API.Ability; with: Reader; nb: Reader; derives: unknown } }
  return capability({ ...descriptor, nb: leanStruct(descriptor.nb) } as never) as unknown as P
}
