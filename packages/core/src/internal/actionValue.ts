import * as Redacted from "effect/Redacted"
import { ascii, quote, quoteKey, sha256Hex } from "./canonical.js"

/**
 * The value domain of actions, checked and encoded in one bounded walk.
 *
 * An action may carry JSON data — `null`, booleans, finite numbers, strings,
 * dense arrays and plain objects — and `Redacted` values of JSON data.
 * Nothing else can be hashed without losing information (a `Map` would be
 * `{}`, `NaN` would be `null`), so nothing else is accepted.
 *
 * The walk is iterative: however deep the value, no JavaScript stack is
 * used per level, and the limits stop it before its work is unbounded (a
 * cycle, or a DAG of shared references that unfolds exponentially). Each
 * property is read once, and what is encoded is what was checked: a getter
 * or a `Proxy` cannot show the check one value and the encoder another.
 */

/** @internal */
export interface Limits {
  readonly maxDepth: number
  readonly maxNodes: number
  readonly maxStringLength: number
}

/** @internal */
export const defaultLimits: Limits = Object.freeze({
  maxDepth: 64,
  maxNodes: 100_000,
  maxStringLength: 10_000_000
})

/**
 * The deepest `maxDepth` a `Governance` accepts. Its own walks are
 * iterative, but what the runtime hands values to is not: `JSON.stringify`
 * in the audit sinks and stores overflows the stack a few thousand levels
 * down, as do Schema's error messages. Under this, every value an action
 * carries can be written.
 *
 * @internal
 */
export const maxDepthCeiling = 1_000

/** @internal */
export const reasons = [
  "unsupported_type",
  "non_finite_number",
  "sparse_array",
  "array_property",
  "symbol_key",
  "duplicate_key",
  "reserved_key",
  "unreadable",
  "cycle",
  "too_deep",
  "too_many_nodes",
  "too_long"
] as const

/** @internal */
export type Reason = typeof reasons[number]

/** @internal */
export interface Problem {
  readonly _tag: "Problem"
  readonly path: string
  readonly reason: Reason
  readonly found?: string
  readonly limit?: number
}

/** The key a `Redacted` value is encoded under: no plain object may have it. */
export const redactedKey = "<redacted>"

/**
 * Whether `n` is a usable limit or count: a positive safe integer.
 *
 * @internal
 */
export const isLimit = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n > 0

/**
 * The limits with every missing value defaulted. A value that is not a
 * positive integer counts as its default (a `NaN` limit would be no limit).
 *
 * @internal
 */
export const resolveLimits = (limits: Partial<Limits> | undefined): Limits =>
  limits === undefined || limits === defaultLimits
    ? defaultLimits
    : isLimit(limits.maxDepth) && isLimit(limits.maxNodes) && isLimit(limits.maxStringLength)
    ? limits as Limits
    : {
      maxDepth: isLimit(limits.maxDepth) ? limits.maxDepth : defaultLimits.maxDepth,
      maxNodes: isLimit(limits.maxNodes) ? limits.maxNodes : defaultLimits.maxNodes,
      maxStringLength: isLimit(limits.maxStringLength) ? limits.maxStringLength : defaultLimits.maxStringLength
    }

type Segment = string | number

const ARRAY = 0
const OBJECT = 1
const REDACTED = 2

interface Frame {
  readonly kind: 0 | 1 | 2
  /** The array, the object, or the `Redacted` value. */
  readonly value: unknown
  /** An object's keys in encoding order (raw, as they are read). */
  readonly keys: ReadonlyArray<string> | undefined
  /** The quoted NFC keys, when an object has a key that is not ASCII. */
  readonly quoted: ReadonlyArray<string> | undefined
  readonly length: number
  readonly parent: Frame | undefined
  /** Where this container sits in its parent. */
  readonly segment: Segment | undefined
  readonly depth: number
  /** Where a `Redacted` value's inner text starts in the output. */
  readonly start: number
  index: number
  wrote: boolean
}

const frame = (
  kind: 0 | 1 | 2,
  value: unknown,
  keys: ReadonlyArray<string> | undefined,
  quoted: ReadonlyArray<string> | undefined,
  length: number,
  parent: Frame | undefined,
  segment: Segment | undefined,
  depth: number,
  start: number
): Frame => ({ kind, value, keys, quoted, length, parent, segment, depth, start, index: 0, wrote: false })

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/**
 * `root` and the segments (collected innermost first) as a path: `payload.items[0]["a b"]`.
 *
 * @internal
 */
export const joinPath = (root: string, innermostFirst: ReadonlyArray<Segment>): string => {
  let path = root
  for (let i = innermostFirst.length - 1; i >= 0; i--) {
    const s = innermostFirst[i]!
    path += typeof s === "number"
      ? `[${s}]`
      : identifier.test(s)
      ? (path === "" ? s : `.${s}`)
      : `[${JSON.stringify(s)}]`
  }
  return path
}

/**
 * The readable path of a location: `payload.items[3].name`,
 * `metadata["a2a.task_id"]`. Inside a `Redacted` value the path stops at the
 * value: the shape of a secret is not told.
 */
const pathOf = (root: string, parent: Frame | undefined, segment: Segment | undefined): string => {
  const segments: Array<Segment> = []
  if (segment !== undefined) segments.push(segment)
  for (let f = parent; f !== undefined; f = f.parent) {
    if (f.kind === REDACTED) segments.length = 0
    if (f.segment !== undefined) segments.push(f.segment)
  }
  return joinPath(root, segments)
}

/** What a value that is not JSON data is, for the error: `Map`, `Date`, `class Foo`, `bigint`. */
const describe = (value: unknown): string => {
  if (typeof value !== "object" || value === null) return typeof value
  try {
    const tag = Object.prototype.toString.call(value).slice(8, -1)
    const proto: unknown = Object.getPrototypeOf(value)
    const ctor = typeof proto === "object" && proto !== null
      ? (proto as { constructor?: unknown }).constructor
      : undefined
    const name = typeof ctor === "function" && typeof ctor.name === "string" ? ctor.name : ""
    const found = name !== "" && name !== tag ? (tag === "Object" ? `class ${name}` : `${tag} (${name})`) : tag
    return found.length > 64 ? found.slice(0, 64) + "…" : found
  } catch {
    return "object"
  }
}

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

class Walk {
  out = ""
  nodes = 0
  text = 0
  problem: Problem | undefined = undefined

  constructor(
    readonly limits: Limits,
    readonly emit: boolean,
    readonly root: string,
    readonly omit: ReadonlySet<string> | undefined
  ) {}

  fail(
    parent: Frame | undefined,
    segment: Segment | undefined,
    reason: Reason,
    extra?: { readonly found?: string; readonly limit?: number }
  ): undefined {
    this.problem = { _tag: "Problem", path: pathOf(this.root, parent, segment), reason, ...extra }
    return undefined
  }

  /**
   * A limit was hit: when the containers from the root down to here repeat
   * one, the value is cyclic, and the error names where it refers back.
   */
  limitHit(
    value: unknown,
    parent: Frame | undefined,
    segment: Segment | undefined,
    reason: Reason,
    limit: number
  ): undefined {
    const chain: Array<{ readonly value: unknown; readonly parent: Frame | undefined; readonly segment: Segment | undefined }> =
      [{ value, parent, segment }]
    for (let f = parent; f !== undefined; f = f.parent) chain.push({ value: f.value, parent: f.parent, segment: f.segment })
    const seen = new Set<unknown>()
    for (let i = chain.length - 1; i >= 0; i--) {
      const at = chain[i]!
      if (typeof at.value === "object" && at.value !== null && seen.has(at.value)) {
        return this.fail(at.parent, at.segment, "cycle")
      }
      seen.add(at.value)
    }
    return this.fail(parent, segment, reason, { limit })
  }

  addText(length: number, parent: Frame | undefined, segment: Segment | undefined): boolean {
    this.text += length
    if (this.text <= this.limits.maxStringLength) return true
    this.fail(parent, segment, "too_long", { limit: this.limits.maxStringLength })
    return false
  }

  /**
   * Checks a value (never `undefined` but at the root): writes a scalar, or
   * returns the frame of a container to walk. Sets `problem` when refused.
   */
  visit(value: unknown, parent: Frame | undefined, segment: Segment | undefined, depth: number): Frame | undefined {
    if (++this.nodes > this.limits.maxNodes) {
      return this.limitHit(value, parent, segment, "too_many_nodes", this.limits.maxNodes)
    }
    switch (typeof value) {
      case "string":
        if (!this.addText(value.length, parent, segment)) return undefined
        if (this.emit) this.out += quote(value)
        return undefined
      case "number":
        if (!Number.isFinite(value)) return this.fail(parent, segment, "non_finite_number", { found: String(value) })
        // -0 is 0, as in JSON.
        if (this.emit) this.out += String(value)
        return undefined
      case "boolean":
        if (this.emit) this.out += value ? "true" : "false"
        return undefined
      case "object":
        break
      default:
        return this.fail(parent, segment, "unsupported_type", { found: typeof value })
    }
    if (value === null) {
      if (this.emit) this.out += "null"
      return undefined
    }
    if (depth > this.limits.maxDepth) return this.limitHit(value, parent, segment, "too_deep", this.limits.maxDepth)
    try {
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto === Object.prototype || proto === null) {
        return this.object(value as Record<string, unknown>, parent, segment, depth)
      }
      if (proto === Array.prototype && Array.isArray(value)) return this.array(value, parent, segment, depth)
      if (Redacted.isRedacted(value)) {
        return frame(REDACTED, value, undefined, undefined, 1, parent, segment, depth, this.out.length)
      }
      return this.fail(parent, segment, "unsupported_type", { found: describe(value) })
    } catch {
      return this.fail(parent, segment, "unreadable")
    }
  }

  array(
    value: ReadonlyArray<unknown>,
    parent: Frame | undefined,
    segment: Segment | undefined,
    depth: number
  ): Frame | undefined {
    const length = value.length
    // A hole reads as `undefined`, and is refused when the walk reaches it;
    // enumerable keys beyond the indices are properties JSON would drop.
    if (Object.keys(value).length !== length) {
      const self = frame(ARRAY, value, undefined, undefined, length, parent, segment, depth, 0)
      for (let i = 0; i < length; i++) {
        if (!Object.prototype.hasOwnProperty.call(value, i)) return this.fail(self, i, "sparse_array")
      }
      for (const key of Object.keys(value)) {
        if (String(Number(key)) !== key) return this.fail(self, key, "array_property")
      }
    }
    if (Object.getOwnPropertySymbols(value).length > 0) return this.fail(parent, segment, "symbol_key")
    if (length === 0) {
      if (this.emit) this.out += "[]"
      return undefined
    }
    if (this.emit) this.out += "["
    return frame(ARRAY, value, undefined, undefined, length, parent, segment, depth, 0)
  }

  object(
    value: Record<string, unknown>,
    parent: Frame | undefined,
    segment: Segment | undefined,
    depth: number
  ): Frame | undefined {
    // Members are the own enumerable string-keyed properties, as in JSON.
    const keys = Object.keys(value)
    if (Object.getOwnPropertySymbols(value).length > 0) return this.fail(parent, segment, "symbol_key")
    const n = keys.length
    if (n === 0) {
      if (this.emit) this.out += "{}"
      return undefined
    }
    let onlyAscii = true
    let length = 0
    for (let i = 0; i < n; i++) {
      const key = keys[i]!
      length += key.length
      if (onlyAscii && quoteKey(key) === undefined) onlyAscii = false
    }
    if (!this.addText(length, parent, segment)) return undefined
    if (onlyAscii) {
      for (let i = 0; i < n; i++) {
        if (keys[i] === redactedKey) {
          return this.fail(frame(OBJECT, value, keys, undefined, n, parent, segment, depth, 0), redactedKey, "reserved_key")
        }
      }
      // ASCII keys are their own NFC form, so no two are equal: sorting by
      // code unit is the whole ordering (the same as canonical JSON's). Only
      // the encoding needs the order.
      if (this.emit) {
        keys.sort()
        this.out += "{"
      }
      return frame(OBJECT, value, keys, undefined, n, parent, segment, depth, 0)
    }
    const members = new Array<{ readonly raw: string; readonly nfc: string }>(n)
    for (let i = 0; i < n; i++) {
      const raw = keys[i]!
      members[i] = { raw, nfc: ascii.test(raw) ? raw : raw.normalize("NFC") }
    }
    members.sort((a, b) => compareStrings(a.nfc, b.nfc))
    const sorted = new Array<string>(n)
    const quoted = new Array<string>(n)
    const self = frame(OBJECT, value, sorted, quoted, n, parent, segment, depth, 0)
    for (let i = 0; i < n; i++) {
      const { nfc, raw } = members[i]!
      // Two keys equal after NFC would have to be ordered by their values,
      // and swapping the values would not change the encoding.
      if (i > 0 && members[i - 1]!.nfc === nfc) return this.fail(self, nfc, "duplicate_key")
      if (nfc === redactedKey) return this.fail(self, nfc, "reserved_key")
      sorted[i] = raw
      quoted[i] = quote(nfc)
    }
    if (this.emit) this.out += "{"
    return self
  }

  /** Walks `value`; the canonical text when `emit`, else "". */
  run(value: unknown, depth: number): string | Problem {
    let current = this.visit(value, undefined, undefined, depth)
    while (current !== undefined) {
      const f = current
      if (f.index >= f.length) {
        if (this.emit) {
          if (f.kind === ARRAY) {
            this.out += "]"
          } else if (f.kind === OBJECT) {
            this.out += "}"
          } else {
            // Bound to the secret (a changed secret is a changed action)
            // without writing it: its own digest stands in for it.
            const inner = this.out.slice(f.start)
            this.out = this.out.slice(0, f.start) + `{"${redactedKey}":"${sha256Hex(inner)}"}`
          }
        }
        current = f.parent
        continue
      }
      const i = f.index++
      let child: unknown
      let segment: Segment | undefined
      try {
        if (f.kind === ARRAY) {
          segment = i
          child = (f.value as ReadonlyArray<unknown>)[i]
          if (child === undefined) {
            this.fail(f, i, "sparse_array")
            return this.problem!
          }
          if (this.emit && i > 0) this.out += ","
        } else if (f.kind === OBJECT) {
          const key = f.keys![i]!
          segment = key
          if (f.parent === undefined && this.omit !== undefined && this.omit.has(key)) continue
          child = (f.value as Record<string, unknown>)[key]
          // An `undefined` member is an absent one, as in JSON.
          if (child === undefined) continue
          if (this.emit) {
            this.out += (f.wrote ? "," : "") + (f.quoted === undefined ? quoteKey(key)! : f.quoted[i]!) + ":"
          }
          f.wrote = true
        } else {
          child = Redacted.value(f.value as Redacted.Redacted<unknown>)
          if (child === undefined) {
            this.fail(f.parent, f.segment, "unsupported_type", { found: "undefined" })
            return this.problem!
          }
        }
      } catch {
        this.fail(f, segment, "unreadable")
        return this.problem!
      }
      const next = this.visit(child, f, segment, f.depth + 1)
      if (this.problem !== undefined) return this.problem
      if (next !== undefined) current = next
    }
    if (this.problem !== undefined) return this.problem
    return this.out
  }
}

/**
 * Checks `value` against the domain and the limits. `root` names it in paths
 * (`""` for an action, `"payload"` for a payload); `depth` is the depth of
 * its containers (1 for a payload, whose action is depth 0).
 *
 * @internal
 */
export const check = (value: unknown, limits: Limits, root: string, depth: number): Problem | undefined => {
  const result = new Walk(limits, false, root, undefined).run(value, depth)
  return typeof result === "string" ? undefined : result
}

const requestIds: ReadonlySet<string> = new Set(["requestId", "correlationId", "trace"])

/**
 * The canonical JSON of an action (of what it does, without the request's
 * own identifiers, when `bound`), or why it has none. Object keys are
 * ordered by their NFC form: the same text as `canonicalJson` except for an
 * object that mixes a non-ASCII key with keys holding `"`, `\\` or control
 * characters (which `canonicalJson` orders by their quoted form).
 *
 * @internal
 */
export const encodeAction = (action: unknown, limits: Limits, bound: boolean): string | Problem =>
  new Walk(limits, true, "", bound ? requestIds : undefined).run(action, 0)

interface Measured {
  readonly value: unknown
  readonly parent: Measured | undefined
  readonly segment: Segment | undefined
  readonly depth: number
}

const measuredPath = (root: string, at: Measured): string => {
  const segments: Array<Segment> = []
  for (let f: Measured | undefined = at; f !== undefined; f = f.parent) {
    if (f.segment !== undefined) segments.push(f.segment)
  }
  return joinPath(root, segments)
}

/**
 * Checks parsed JSON (a request body, a file) against the limits alone —
 * depth, values, text — before anything recursive (a Schema decode and its
 * error messages, a redaction, a canonical encoding) walks it. Iterative;
 * it looks at arrays and plain objects and counts everything else as a
 * value. `depth` is the depth of the value's containers (1 for a body).
 *
 * @internal
 */
export const measure = (value: unknown, limits: Limits, root: string, depth: number): Problem | undefined => {
  const stack: Array<Measured> = [{ value, parent: undefined, segment: undefined, depth }]
  let nodes = 0
  let text = 0
  const fail = (at: Measured, reason: Reason, limit: number): Problem => ({
    _tag: "Problem",
    path: measuredPath(root, at),
    reason,
    limit
  })
  while (stack.length > 0) {
    const at = stack.pop()!
    if (++nodes > limits.maxNodes) return fail(at, "too_many_nodes", limits.maxNodes)
    const v = at.value
    if (typeof v === "string") {
      text += v.length
      if (text > limits.maxStringLength) return fail(at, "too_long", limits.maxStringLength)
      continue
    }
    if (typeof v !== "object" || v === null) continue
    if (at.depth > limits.maxDepth) return fail(at, "too_deep", limits.maxDepth)
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        stack.push({ value: v[i], parent: at, segment: i, depth: at.depth + 1 })
      }
      continue
    }
    const proto: unknown = Object.getPrototypeOf(v)
    if (proto !== Object.prototype && proto !== null) continue
    const keys = Object.keys(v)
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!
      text += key.length
      if (text > limits.maxStringLength) return fail(at, "too_long", limits.maxStringLength)
      stack.push({ value: (v as Record<string, unknown>)[key], parent: at, segment: key, depth: at.depth + 1 })
    }
  }
  return undefined
}
