/**
 * Globs: `*` matches any run of characters, `?` exactly one. No regular
 * expression is built from a rules document: globs run on an iterative
 * matcher in O(pattern × text).
 */

/** @internal */
export const hasWildcard = (pattern: string): boolean => pattern.includes("*") || pattern.includes("?")

/** The length, in UTF-16 units, of the code point at `i` (a surrogate pair is one code point). */
const width = (text: string, i: number): number => {
  const c = text.charCodeAt(i)
  if (c < 0xd800 || c > 0xdbff || i + 1 >= text.length) return 1
  const d = text.charCodeAt(i + 1)
  return d >= 0xdc00 && d <= 0xdfff ? 2 : 1
}

/**
 * Whether `text` matches `pattern`, where `*` matches any run of characters
 * (dots included, possibly empty) and `?` exactly one; a character is a
 * Unicode code point (`?` matches `😀`, two UTF-16 units), and both texts
 * are compared in NFC (the caller's business: the document is normalized at
 * decode, the action's fields when read). Greedy with a single backtracking
 * point (the last `*` seen): a later `*` can absorb whatever an earlier one
 * would have, so going back further is never needed, and the worst case is
 * O(pattern × text) — never exponential. Both positions only ever move by
 * whole code points, so a literal never matches half of a surrogate pair.
 *
 * @internal
 */
export const globMatch = (pattern: string, text: string): boolean => {
  let p = 0
  let t = 0
  let star = -1
  let mark = 0
  while (t < text.length) {
    const c = pattern.charCodeAt(p)
    if (p < pattern.length && c === 63 /* ? */) {
      p++
      t += width(text, t)
      continue
    }
    if (p < pattern.length && c !== 42 /* * */) {
      const n = width(pattern, p)
      if (n === width(text, t) && c === text.charCodeAt(t) && (n === 1 || pattern.charCodeAt(p + 1) === text.charCodeAt(t + 1))) {
        p += n
        t += n
        continue
      }
    }
    if (p < pattern.length && c === 42) {
      star = p++
      mark = t
    } else if (star !== -1) {
      p = star + 1
      mark += width(text, mark)
      t = mark
    } else {
      return false
    }
  }
  while (p < pattern.length && pattern.charCodeAt(p) === 42) p++
  return p === pattern.length
}

/**
 * A matcher for `pattern`: plain equality when it has no wildcard.
 *
 * @internal
 */
export const compileGlob = (pattern: string): (text: string) => boolean =>
  hasWildcard(pattern) ? (text) => globMatch(pattern, text) : (text) => text === pattern
