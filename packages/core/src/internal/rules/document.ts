/**
 * A rules document as written, before anything recursive runs on it: the
 * iterative walk that checks its bounds (rules, values, nesting, globs), and
 * its canonical form (every string in NFC).
 */
import type { Limits } from "../../Rules.js"
import { nfc } from "../canonical.js"
import { maxConditionDepth } from "./condition.js"

// -----------------------------------------------------------------------------
// bounds: the walk that runs before anything recursive
// -----------------------------------------------------------------------------

/**
 * Objects and lists nest at most this deep anywhere in a document: room for
 * conditions at {@link maxConditionDepth} (a group inside `all` is two
 * levels) and the few levels around them, and far below what would overflow
 * the stack of a recursive decoder, formatter or parser.
 *
 * @internal
 */
export const maxNesting = 2 * maxConditionDepth + 16

/**
 * A problem found by {@link checkBounds}, at `path` from the document's
 * root. A fatal one means the document was not walked to its end and must
 * not be decoded.
 *
 * @internal
 */
export interface BoundsIssue {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
  readonly fatal: boolean
}

/** What a value is in a document, as far as the bounds care. */
type Role = "document" | "rules" | "rule" | "match" | "resource" | "condition" | "conditions" | "glob" | "other"

interface Frame {
  readonly value: unknown
  readonly key: string | number | undefined
  readonly parent: Frame | undefined
  /** Objects and lists from the root to this value, this one included when it is one. */
  readonly depth: number
  readonly role: Role
  /** For a condition, the groups (`all`, `any`, `not`) it is nested in. */
  readonly groups: number
}

const pathOf = (frame: Frame): Array<string | number> => {
  const path: Array<string | number> = []
  for (let f: Frame | undefined = frame; f !== undefined && f.key !== undefined; f = f.parent) path.push(f.key)
  return path.reverse()
}

const childRole = (role: Role, key: string): Role => {
  switch (role) {
    case "document":
      return key === "rules" ? "rules" : "other"
    case "rule":
      return key === "match" ? "match" : key === "when" ? "condition" : "other"
    case "match":
      return key === "name" ? "glob" : key === "resource" ? "resource" : "other"
    case "resource":
      return key === "id" ? "glob" : "other"
    case "condition":
      return key === "not" ? "condition" : key === "all" || key === "any" ? "conditions" : key === "glob" ? "glob" : "other"
    default:
      return "other"
  }
}

/**
 * The problem of a value nested deeper than {@link maxNesting}.
 *
 * @internal
 */
export const tooDeep = `nested too deeply: objects and lists nest at most ${maxNesting} levels in a rules document`

/**
 * Walks a document as written, iteratively (an explicit stack, never
 * recursion), and checks its bounds: the number of rules, the number of
 * values (shared references counted each time they occur, so a document
 * that is small in memory but huge as a tree is refused too), the nesting of
 * objects and lists (which also refuses cycles), the nesting of conditions
 * and the length of globs. The work is bounded by `maxValues` whatever the
 * input; everything recursive that runs afterwards (Schema decoding, error
 * formatting, `JSON.stringify`, compilation, evaluation) is bounded by the
 * nesting.
 *
 * @internal
 */
export const checkBounds = (input: unknown, limits: Limits): ReadonlyArray<BoundsIssue> => {
  const issues: Array<BoundsIssue> = []
  const stack: Array<Frame> = [{ value: input, key: undefined, parent: undefined, depth: 0, role: "document", groups: 0 }]
  let values = 1
  const tooMany = (frame: Frame) =>
    issues.push({
      path: pathOf(frame),
      message: `a rules document holds at most ${limits.maxValues} values (objects, lists and scalars, counted where they occur); this one holds more`,
      fatal: true
    })
  while (stack.length > 0) {
    const frame = stack.pop()!
    const { role, value } = frame
    if (typeof value === "string") {
      if (role === "glob" && value.length > limits.maxGlobLength) {
        issues.push({
          path: pathOf(frame),
          message: `a glob is at most ${limits.maxGlobLength} characters long; this one has ${value.length}`,
          fatal: false
        })
      }
      continue
    }
    if (typeof value !== "object" || value === null) continue
    const depth = frame.depth + 1
    if (depth > maxNesting) {
      issues.push({
        path: pathOf(frame),
        message: tooDeep,
        fatal: true
      })
      continue
    }
    if (Array.isArray(value)) {
      if (role === "rules" && value.length > limits.maxRules) {
        issues.push({
          path: pathOf(frame),
          message: `a rules document holds at most ${limits.maxRules} rules; this one has ${value.length}`,
          fatal: true
        })
        continue
      }
      values += value.length
      if (values > limits.maxValues) {
        tooMany(frame)
        break
      }
      const item: Role = role === "rules" ? "rule" : role === "conditions" ? "condition" : "other"
      for (let i = value.length - 1; i >= 0; i--) {
        stack.push({ value: value[i], key: i, parent: frame, depth, role: item, groups: frame.groups })
      }
      continue
    }
    if (role === "condition" && frame.groups >= maxConditionDepth) {
      issues.push({ path: pathOf(frame), message: `conditions nest at most ${maxConditionDepth} levels deep`, fatal: true })
      continue
    }
    const keys = Object.keys(value)
    values += keys.length
    if (values > limits.maxValues) {
      tooMany(frame)
      break
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!
      const next = childRole(role, key)
      const groups = role === "condition" && (next === "condition" || next === "conditions") ? frame.groups + 1 : frame.groups
      stack.push({ value: (value as Record<string, unknown>)[key], key, parent: frame, depth, role: next, groups })
    }
  }
  return issues
}

// -----------------------------------------------------------------------------
// the canonical form of a document
// -----------------------------------------------------------------------------

/**
 * A document as written, with every string in NFC (`nfc` of
 * `internal/canonical.ts`, which `policyHash` uses too): the compiled rules,
 * `Rules.explain` and the hash then all see the same text, and an action's
 * fields are read in NFC. Copy on write: a list or an object none of whose
 * strings changes (an ASCII document: nearly all) is returned as it is.
 * Keys are kept as written (every key a document may hold is ASCII, any
 * other is refused by name). Recursive: run it only on a document
 * {@link checkBounds} passed, whose nesting is bounded.
 *
 * @internal
 */
export const canonicalDocument = (input: unknown): unknown => {
  if (typeof input === "string") return nfc(input)
  if (typeof input !== "object" || input === null) return input
  if (Array.isArray(input)) {
    let out: Array<unknown> | undefined
    for (let i = 0; i < input.length; i++) {
      const value: unknown = input[i]
      const canonical = canonicalDocument(value)
      if (out === undefined && canonical !== value) out = input.slice(0, i)
      out?.push(canonical)
    }
    return out ?? input
  }
  const keys = Object.keys(input)
  let out: Record<string, unknown> | undefined
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    const value = (input as Record<string, unknown>)[key]
    const canonical = canonicalDocument(value)
    if (out === undefined && canonical !== value) {
      out = {}
      for (let j = 0; j < i; j++) define(out, keys[j]!, (input as Record<string, unknown>)[keys[j]!])
    }
    if (out !== undefined) define(out, key, canonical)
  }
  return out ?? input
}

/** Sets an own property; an own "__proto__" key (JSON.parse makes one) stays an own property. */
const define = (record: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === "__proto__") Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
  else record[key] = value
}
