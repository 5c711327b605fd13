/**
 * Redaction: what is masked before anything about an action is written (audit
 * events, stored approvals, stored decisions). Three rules apply, in every
 * value written:
 *
 * - a `Redacted` value is never unwrapped: it is written as `<redacted>`;
 * - a configured path (`payload.card.number`, `metadata.session`,
 *   `payload.items.*.token`) is masked;
 * - a member whose key looks like a credential (`authorization`, `cookie`,
 *   `password`, `secret`, `token`, `apiKey`, …, matched case-insensitively
 *   inside the key) is masked, at any depth.
 *
 * The payload itself is left out of written records unless the host asks for
 * it (`payload: "include"`), and then only with the rules above applied.
 * Whatever was masked or left out is listed, as concrete paths, in the
 * record's `redaction.omitted`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Action from "./Action.js"
import type * as DecisionRecord from "./DecisionRecord.js"
import type * as Explain from "./Explain.js"
import { resolveLimits } from "./internal/actionValue.js"

/**
 * What a masked value is written as.
 *
 * @since 0.1.0
 * @category constants
 */
export const mask: string = "<redacted>"

/**
 * The key fragments masked by default (compared after lower-casing the key
 * and dropping `-` and `_`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultKeys: ReadonlyArray<string> = [
  "authorization",
  "cookie",
  "password",
  "passwd",
  "secret",
  "token",
  "apikey",
  "privatekey",
  "credential",
  "signature"
]

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Paths to mask, dot-separated from the action (`payload.card.number`,
   * `metadata.session`); `*` matches any member or array index.
   */
  readonly paths?: ReadonlyArray<string> | undefined
  /** Key fragments masked at any depth. Default {@link defaultKeys}; `[]` turns the rule off. */
  readonly keys?: ReadonlyArray<string> | undefined
  /** Whether written records carry the (masked) payload. Default `"omit"`. */
  readonly payload?: "omit" | "include" | undefined
}

/**
 * A validated redaction configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface Redaction {
  readonly paths: ReadonlyArray<ReadonlyArray<string>>
  readonly keys: ReadonlyArray<string>
  readonly payload: "omit" | "include"
}

/**
 * A redaction configuration was refused (an empty path or segment).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRedaction extends Schema.TaggedError<InvalidRedaction>()("InvalidRedaction", {
  path: Schema.String,
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid redaction path "${this.path}": ${this.detail}`
  }
}

const isPlainObject = (u: unknown): u is Readonly<Record<string, unknown>> => {
  if (typeof u !== "object" || u === null) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

const normalizeKey = (key: string): string => key.toLowerCase().replace(/[-_]/g, "")

/**
 * Validates a configuration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Either.Either<Redaction, InvalidRedaction> => {
  const paths: Array<ReadonlyArray<string>> = []
  for (const path of options.paths ?? []) {
    const segments = path.split(".")
    if (path.trim() === "" || segments.some((s) => s.trim() === "")) {
      return Either.left(new InvalidRedaction({ path, detail: "every segment must be non-empty" }))
    }
    paths.push(segments)
  }
  return Either.right({
    paths,
    keys: (options.keys ?? defaultKeys).map(normalizeKey).filter((k) => k !== ""),
    payload: options.payload ?? "omit"
  })
}

/**
 * The default configuration: default keys, no paths, payload omitted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults: Redaction = Either.getOrThrow(make())

const isSensitiveKey = (self: Redaction, key: string): boolean => {
  if (self.keys.length === 0) return false
  const normalized = normalizeKey(key)
  return self.keys.some((fragment) => normalized.includes(fragment))
}

/** Configured paths still alive below `segment`, and whether one ends exactly here. */
const descend = (
  paths: ReadonlyArray<ReadonlyArray<string>>,
  segment: string
): { readonly rest: ReadonlyArray<ReadonlyArray<string>>; readonly hit: boolean } => {
  let hit = false
  const rest: Array<ReadonlyArray<string>> = []
  for (const path of paths) {
    const head = path[0]
    if (head !== "*" && head !== segment) continue
    if (path.length === 1) hit = true
    else rest.push(path.slice(1))
  }
  return { rest, hit }
}

/** A container being copied: the source, its copy, and the next member to copy. */
interface Frame {
  readonly source: ReadonlyArray<unknown> | Readonly<Record<string, unknown>>
  readonly out: Array<unknown> | Record<string, unknown>
  /** An object's keys; `undefined` for an array. */
  readonly keys: ReadonlyArray<string> | undefined
  readonly length: number
  readonly at: string
  readonly paths: ReadonlyArray<ReadonlyArray<string>>
  readonly depth: number
  index: number
}

/**
 * The masked copy of a value, walked iteratively: however deep the value, no
 * JavaScript stack is used per level, and the limits stop the walk (with
 * `InvalidAction`, as `Action.validate` would) before its work is unbounded.
 * `depth` is the depth of the value's containers (1 for a payload).
 */
const walk = (
  self: Redaction,
  value: unknown,
  at: string,
  paths: ReadonlyArray<ReadonlyArray<string>>,
  omitted: Array<string>,
  limits: Action.Limits,
  depth: number
): unknown => {
  let nodes = 0
  const stack: Array<Frame> = []
  /** A scalar's masked form, or a container's empty copy (pushed to be filled). */
  const visit = (value: unknown, at: string, paths: ReadonlyArray<ReadonlyArray<string>>, depth: number): unknown => {
    if (++nodes > limits.maxNodes) throw overLimit(at, "too_many_nodes", limits.maxNodes)
    if (Redacted.isRedacted(value)) {
      omitted.push(at)
      return mask
    }
    const isArray = Array.isArray(value)
    if (isArray || isPlainObject(value)) {
      if (depth > limits.maxDepth) throw overLimit(at, "too_deep", limits.maxDepth)
      const keys = isArray ? undefined : Object.keys(value)
      // No prototype: a member named `__proto__` stays a member.
      const out: Array<unknown> | Record<string, unknown> = isArray ? [] : Object.create(null)
      const length = isArray ? (value as ReadonlyArray<unknown>).length : keys!.length
      stack.push({ source: value as Frame["source"], out, keys, length, at, paths, depth, index: 0 })
      return out
    }
    if (value instanceof Date) return value.toISOString()
    switch (typeof value) {
      case "object":
        if (value === null) return value
        // Class instances (other than Redacted and Date) are not plain data: they
        // could serialize their secrets in ways no path names. Leave them out.
        omitted.push(at)
        return mask
      case "bigint":
        return value.toString()
      case "function":
      case "symbol":
        return undefined
      default:
        return value
    }
  }
  const result = visit(value, at, paths, depth)
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!
    if (f.index >= f.length) {
      stack.pop()
      continue
    }
    const i = f.index++
    const key = f.keys === undefined ? String(i) : f.keys[i]!
    const { hit, rest } = descend(f.paths, key)
    const path = `${f.at}.${key}`
    let copy: unknown
    if (hit || (f.keys !== undefined && isSensitiveKey(self, key))) {
      omitted.push(path)
      copy = mask
    } else {
      const child = f.keys === undefined
        ? (f.source as ReadonlyArray<unknown>)[i]
        : (f.source as Readonly<Record<string, unknown>>)[key]
      copy = visit(child, path, rest, f.depth + 1)
    }
    if (f.keys === undefined) (f.out as Array<unknown>).push(copy)
    else (f.out as Record<string, unknown>)[key] = copy
  }
  return result
}

const overLimit = (at: string, reason: "too_deep" | "too_many_nodes", limit: number): Action.InvalidAction =>
  new Action.InvalidAction({ path: at, reason, limit })

/**
 * Masks a value found at `root` of the action (`"payload"`, `"metadata"`):
 * returns the masked copy and the concrete paths that were masked.
 *
 * The walk is iterative and bounded by `limits` (missing ones default to
 * `Action.defaultLimits`; the value's containers start at depth 1, as a
 * payload's do): however deep the value, it never overflows the stack.
 *
 * @throws `Action.InvalidAction` (`too_deep` or `too_many_nodes`, `path` as
 * redaction writes it: `payload.items.3`) for a value over `limits`.
 *
 * @example
 * ```ts
 * import { Redaction } from "@gavel/core"
 * import { Either, Redacted } from "effect"
 *
 * const config = Redaction.make({ paths: ["payload.card.number"] }).pipe(Either.getOrThrow)
 * Redaction.apply(config, "payload", { card: { number: "4111…", cvc: Redacted.make("123") } })
 * // { value: { card: { number: "<redacted>", cvc: "<redacted>" } },
 * //   omitted: ["payload.card.number", "payload.card.cvc"] }
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const apply = (
  self: Redaction,
  root: string,
  value: unknown,
  limits?: Partial<Action.Limits>
): { readonly value: unknown; readonly omitted: ReadonlyArray<string> } =>
  applyAt(self, root, root, value, resolveLimits(limits))

/** Matches the configured paths from `root`, and reports masked paths under `reportAs`. */
const applyAt = (self: Redaction, root: string, reportAs: string, value: unknown, limits: Action.Limits) => {
  const { hit, rest } = descend(self.paths, root)
  if (hit) return { value: mask as unknown, omitted: [reportAs] }
  const omitted: Array<string> = []
  return { value: walk(self, value, reportAs, rest, omitted, limits, 1), omitted }
}

/**
 * Masks a string map found at `root` (metadata, headers): the same rules,
 * and the result is still a string map.
 *
 * @since 0.1.0
 * @category redaction
 */
export const applyStrings = (
  self: Redaction,
  root: string,
  value: Readonly<Record<string, string>>
): { readonly value: Readonly<Record<string, string>>; readonly omitted: ReadonlyArray<string> } =>
  applyStringsAt(self, root, root, value)

const applyStringsAt = (
  self: Redaction,
  root: string,
  reportAs: string,
  value: Readonly<Record<string, string>>
) => {
  let out: Record<string, string> | undefined
  const omitted: Array<string> = []
  const { hit, rest } = descend(self.paths, root)
  for (const key of Object.keys(value)) {
    if (hit || descend(rest, key).hit || isSensitiveKey(self, key)) {
      out ??= { ...value }
      out[key] = mask
      omitted.push(`${reportAs}.${key}`)
    }
  }
  return { value: out ?? value, omitted }
}

const maskAction = (
  self: Redaction,
  root: string,
  action: Action.Action,
  omitted: Array<string>,
  limits: Action.Limits
): Action.Action => {
  const { payload, ...rest } = action
  // A replacement is an action too: configured paths apply from its root.
  const metadata = applyStringsAt(self, "metadata", `${root}.metadata`, action.metadata)
  omitted.push(...metadata.omitted)
  const out: { -readonly [K in keyof Action.Action]: Action.Action[K] } = {
    ...rest,
    actor: { ...action.actor, attributes: {} },
    metadata: metadata.value
  }
  if (Object.keys(action.actor.attributes).length > 0) omitted.push(`${root}.actor.attributes`)
  if (payload !== undefined) {
    if (self.payload === "include") {
      const masked = applyAt(self, "payload", `${root}.payload`, payload, limits)
      omitted.push(...masked.omitted)
      out.payload = masked.value
    } else {
      omitted.push(`${root}.payload`)
    }
  }
  return out
}

/**
 * The record as it may be written: metadata masked, a transformed action's
 * replacement masked the same way (its payload left out unless included),
 * and `redaction.omitted` listing everything that was masked or left out.
 * `payload` is the action's masked payload when the configuration includes
 * payloads (records themselves never carry the payload).
 *
 * Payloads are walked as {@link apply} walks them, under `limits`.
 *
 * @throws `Action.InvalidAction` for a payload (the action's, or a
 * replacement's) over `limits`.
 *
 * @since 0.1.0
 * @category redaction
 */
export const record = (
  self: Redaction,
  record: DecisionRecord.DecisionRecord,
  action: Action.Action,
  limits?: Partial<Action.Limits>
): { readonly record: DecisionRecord.DecisionRecord; readonly payload: unknown } => {
  const resolved = resolveLimits(limits)
  const omitted: Array<string> = []
  let payload: unknown = undefined
  for (const path of record.redaction.omitted) {
    if (path !== "payload" || self.payload === "omit") omitted.push(path)
  }
  if (self.payload === "include" && action.payload !== undefined) {
    const masked = applyAt(self, "payload", "payload", action.payload, resolved)
    omitted.push(...masked.omitted)
    payload = masked.value
  }
  const metadata = applyStrings(self, "metadata", record.inputs.metadata)
  omitted.push(...metadata.omitted)
  // A transform carries a whole replacement action: in the decision, and in
  // the explain entry of the policy that proposed it.
  const decision = record.decision._tag === "Transform"
    ? { ...record.decision, action: maskAction(self, "decision.action", record.decision.action, omitted, resolved) }
    : record.decision
  let explain = record.explain
  for (let i = 0; i < explain.length; i++) {
    const result = explain[i]!.result
    if (result._tag !== "Transform") continue
    if (explain === record.explain) explain = explain.slice()
    const masked = maskAction(self, `explain.${i}.result.action`, result.action, omitted, resolved)
    ;(explain as Array<Explain.Entry>)[i] = { ...explain[i]!, result: { ...result, action: masked } }
  }
  return {
    record: {
      ...record,
      inputs: { ...record.inputs, metadata: metadata.value },
      decision,
      explain,
      redaction: { omitted: Array.from(new Set(omitted)).sort() }
    },
    payload
  }
}
