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
import type * as Action from "./Action.js"
import type * as DecisionRecord from "./DecisionRecord.js"
import type * as Explain from "./Explain.js"

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

const walk = (
  self: Redaction,
  value: unknown,
  at: string,
  paths: ReadonlyArray<ReadonlyArray<string>>,
  omitted: Array<string>
): unknown => {
  if (Redacted.isRedacted(value)) {
    omitted.push(at)
    return mask
  }
  if (Array.isArray(value)) {
    return value.map((item, i) => {
      const { hit, rest } = descend(paths, String(i))
      const path = `${at}.${i}`
      if (hit) {
        omitted.push(path)
        return mask
      }
      return walk(self, item, path, rest, omitted)
    })
  }
  if (isPlainObject(value)) {
    // No prototype: a member named `__proto__` stays a member.
    const out: Record<string, unknown> = Object.create(null)
    for (const key of Object.keys(value)) {
      const { hit, rest } = descend(paths, key)
      const path = `${at}.${key}`
      if (hit || isSensitiveKey(self, key)) {
        omitted.push(path)
        out[key] = mask
      } else {
        out[key] = walk(self, value[key], path, rest, omitted)
      }
    }
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

/**
 * Masks a value found at `root` of the action (`"payload"`, `"metadata"`):
 * returns the masked copy and the concrete paths that were masked.
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
  value: unknown
): { readonly value: unknown; readonly omitted: ReadonlyArray<string> } => applyAt(self, root, root, value)

/** Matches the configured paths from `root`, and reports masked paths under `reportAs`. */
const applyAt = (self: Redaction, root: string, reportAs: string, value: unknown) => {
  const { hit, rest } = descend(self.paths, root)
  if (hit) return { value: mask as unknown, omitted: [reportAs] }
  const omitted: Array<string> = []
  return { value: walk(self, value, reportAs, rest, omitted), omitted }
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
  omitted: Array<string>
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
      const masked = applyAt(self, "payload", `${root}.payload`, payload)
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
 * @since 0.1.0
 * @category redaction
 */
export const record = (
  self: Redaction,
  record: DecisionRecord.DecisionRecord,
  action: Action.Action
): { readonly record: DecisionRecord.DecisionRecord; readonly payload: unknown } => {
  const omitted: Array<string> = []
  let payload: unknown = undefined
  for (const path of record.redaction.omitted) {
    if (path !== "payload" || self.payload === "omit") omitted.push(path)
  }
  if (self.payload === "include" && action.payload !== undefined) {
    const masked = apply(self, "payload", action.payload)
    omitted.push(...masked.omitted)
    payload = masked.value
  }
  const metadata = applyStrings(self, "metadata", record.inputs.metadata)
  omitted.push(...metadata.omitted)
  // A transform carries a whole replacement action: in the decision, and in
  // the explain entry of the policy that proposed it.
  const decision = record.decision._tag === "Transform"
    ? { ...record.decision, action: maskAction(self, "decision.action", record.decision.action, omitted) }
    : record.decision
  let explain = record.explain
  for (let i = 0; i < explain.length; i++) {
    const result = explain[i]!.result
    if (result._tag !== "Transform") continue
    if (explain === record.explain) explain = explain.slice()
    const masked = maskAction(self, `explain.${i}.result.action`, result.action, omitted)
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
