/**
 * Loading the service's witness policy (c2sp.org/tlog-policy) from `witness_policy.txt`.
 *
 * The bundled witness's key is created on first start, so the committed policy names it with two
 * placeholders, `@bundled-vkey` and `@bundled-url`, replaced here by its real vkey (type 0x04) and
 * submission prefix. Everything else is the standard grammar, parsed by src/tlog/policy.ts.
 */
import { type Policy, parsePolicy } from '../tlog/index.js'

/**
 * The policy `serve` uses when `./witness_policy.txt` is absent (run outside the checkout): the
 * bundled witness alone, as the committed file says. /info shows it with the placeholders filled in.
 */
export const BUILTIN_POLICY = 'witness bundled @bundled-vkey @bundled-url\nquorum bundled\n'

/** A policy that names the bundled witness while none runs, or that the tlog-policy parser refuses. */
export class PolicyConfigError extends Error {
  override name = 'PolicyConfigError'
}

/**
 * Resolves the placeholders and parses the policy.
 * @param text the policy file's contents.
 * @param bundled the bundled witness, or undefined when it is disabled.
 * @returns the effective policy text (what `/info` shows) and the parsed policy.
 * @throws PolicyConfigError (the message names the file line for grammar errors).
 */
export function loadPolicy(text: string, bundled: { vkey: string; url: string } | undefined, file = 'witness policy'): { effective: string; policy: Policy } {
  // Placeholders count only outside comment lines, so the file can explain them in its comments.
  const lines = text.split('\n')
  const isComment = (l: string) => l.trimStart().startsWith('#')
  const uses = lines.some((l) => !isComment(l) && /@bundled-(vkey|url)\b/.test(l))
  if (uses && !bundled) throw new PolicyConfigError(`${file} refers to the bundled witness (@bundled-vkey), which is disabled`)
  const effective = bundled
    ? lines.map((l) => (isComment(l) ? l : l.replaceAll('@bundled-vkey', bundled.vkey).replaceAll('@bundled-url', bundled.url))).join('\n')
    : text
  try {
    return { effective, policy: parsePolicy(effective) }
  } catch (err) {
    throw new PolicyConfigError(`${file}: ${(err as Error).message}`)
  }
}
