/**
 * The machinery of declarative rules: globs, the fields of an action a
 * condition may read, the static check of conditions and their compilation
 * into plain functions. No `eval`, no regular expression built from a rules
 * document: globs run on an iterative matcher in O(pattern × text).
 */
import type * as Action from "../Action.js"
import { isAscii, nfc } from "./canonical.js"

// -----------------------------------------------------------------------------
// globs
// -----------------------------------------------------------------------------

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

// -----------------------------------------------------------------------------
// reading an action
// -----------------------------------------------------------------------------

const hasOwn = Object.prototype.hasOwnProperty

/** A list index as a path segment writes it: `0`, `12`, never `01` or `-1`. */
const arrayIndex = /^(0|[1-9]\d*)$/

/**
 * One step of a field path: the own property `key` of an object (never a
 * prototype's: with `Object.prototype.tenant` set by other code, an actor
 * without a tenant still has none), or on a list the element at index `key`
 * (a list has no other fields: `items.length` is missing). A key is compared
 * in NFC: when the object has no key written exactly so, its key whose NFC
 * form is `key` is read (a valid action has at most one, see
 * `Action.validate`).
 */
const step = (value: unknown, key: string): unknown => {
  if (typeof value !== "object" || value === null) return undefined
  if (hasOwn.call(value, key)) {
    return Array.isArray(value) && !arrayIndex.test(key) ? undefined : (value as Record<string, unknown>)[key]
  }
  return Array.isArray(value) ? undefined : byCanonicalKey(value as Record<string, unknown>, key)
}

/** Out of line (so that {@link step} stays small): the own key of `record` written otherwise than `key` but equal to it in NFC. */
const byCanonicalKey = (record: Record<string, unknown>, key: string): unknown => {
  for (const other of Object.keys(record)) {
    if (!isAscii(other) && other.normalize("NFC") === key) return record[other]
  }
  return undefined
}

/**
 * The reader of the field at `path` (from the action's root: `["actor",
 * "tenant"]`, `["metadata", "a.b"]`, `["payload", "items", "0"]`): the one
 * way every rule reads an action — `match` and `when`, every field. Own
 * properties only, keys compared in NFC; `undefined` when the action has no
 * such value (an own property holding `undefined` included: JSON has no
 * `undefined`, and the action's hash leaves such a property out). The value
 * is as written: compare it in NFC with {@link isText}, or read it in NFC
 * with {@link canonical}.
 *
 * @internal
 */
export const reader = (path: ReadonlyArray<string>): (action: Action.Action) => unknown => {
  switch (path.length) {
    case 1: {
      const [a] = path as [string]
      return (action) => step(action, a)
    }
    case 2: {
      const [a, b] = path as [string, string]
      return (action) => step(step(action, a), b)
    }
    default:
      return (action) => {
        let value: unknown = action
        for (let i = 0; i < path.length && value !== undefined; i++) value = step(value, path[i]!)
        return value
      }
  }
}

/**
 * A value read from an action in canonical form: a string in NFC.
 *
 * @internal
 */
export const canonical = (value: unknown): unknown => typeof value === "string" ? nfc(value) : value

/**
 * Whether `value`, read from an action as written, is the text `text` of a
 * document (in NFC since decoding): `nfc(value) === text`, without
 * normalizing on the way to a match (a value equal to an NFC text is in NFC
 * itself) nor for ASCII (its own NFC form).
 *
 * @internal
 */
export const isText = (value: unknown, text: string): boolean =>
  value === text || (typeof value === "string" && !isAscii(value) && value.normalize("NFC") === text)

/**
 * The actor's roles as written: its own list, or none. Only the list's own
 * elements count (a hole is no role), and only strings are roles.
 */
const readRoles = (): (action: Action.Action) => ReadonlyArray<unknown> => {
  const list = reader(["actor", "roles"])
  return (action) => {
    const roles = list(action)
    return Array.isArray(roles) ? roles : noRoles
  }
}

const noRoles: ReadonlyArray<string> = []

/** Whether the actor holds a role at all: an own element that is a string. */
const hasRole = (held: ReadonlyArray<unknown>): boolean => {
  for (let i = 0; i < held.length; i++) if (typeof held[i] === "string" && hasOwn.call(held, i)) return true
  return false
}

/**
 * Whether the actor holds one of `wanted` (roles in NFC), each held role
 * compared in NFC.
 *
 * @internal
 */
export const holdsAny = (held: ReadonlyArray<unknown>, wanted: ReadonlyArray<string> | ReadonlySet<string>): boolean => {
  for (let i = 0; i < held.length; i++) {
    const role = held[i]
    if (typeof role !== "string") continue
    // Own-ness checked on a match only: a hole is read through the prototype.
    if ((has(wanted, role) || (!isAscii(role) && has(wanted, role.normalize("NFC")))) && hasOwn.call(held, i)) return true
  }
  return false
}

const has = (wanted: ReadonlyArray<string> | ReadonlySet<string>, role: string): boolean =>
  Array.isArray(wanted) ? wanted.includes(role) : (wanted as ReadonlySet<string>).has(role)

// -----------------------------------------------------------------------------
// fields
// -----------------------------------------------------------------------------

/** What a field holds: a string, the actor kind, the actor's roles, or anything (payload). */
type FieldType = "string" | "principalKind" | "roles" | "unknown"

interface Field {
  readonly name: string
  readonly type: FieldType
  /** As written (compare in NFC); `undefined` when the action has no such value. */
  readonly get: (action: Action.Action) => unknown
}

const principalKinds: ReadonlyArray<string> = ["human", "agent", "service"]

const field = (name: string, type: FieldType, path: ReadonlyArray<string>): Field => ({ name, type, get: reader(path) })

const fixed: Record<string, Field> = {
  kind: field("kind", "string", ["kind"]),
  name: field("name", "string", ["name"]),
  "actor.id": field("actor.id", "string", ["actor", "id"]),
  "actor.kind": field("actor.kind", "principalKind", ["actor", "kind"]),
  "actor.tenant": field("actor.tenant", "string", ["actor", "tenant"]),
  "actor.roles": { name: "actor.roles", type: "roles", get: readRoles() },
  "resource.type": field("resource.type", "string", ["resource", "type"]),
  "resource.id": field("resource.id", "string", ["resource", "id"]),
  payload: field("payload", "unknown", ["payload"])
}

/**
 * The readers `match` uses: the conditions' fields.
 *
 * @internal
 */
export const read = {
  kind: fixed.kind!.get,
  name: fixed.name!.get,
  tenant: fixed["actor.tenant"]!.get,
  roles: fixed["actor.roles"]!.get as (action: Action.Action) => ReadonlyArray<unknown>,
  resource: reader(["resource"]),
  resourceType: fixed["resource.type"]!.get,
  resourceId: fixed["resource.id"]!.get
}

const fieldList =
  "kind, name, actor.id, actor.kind, actor.tenant, actor.roles, actor.attributes.<key>, resource.type, resource.id, metadata.<key>, payload, payload.<path>"

/** The field named `name`, or why there is none. */
const parseField = (name: string): Field | string => {
  if (Object.prototype.hasOwnProperty.call(fixed, name)) return fixed[name]!
  if (name.startsWith("metadata.") && name.length > "metadata.".length) {
    return field(name, "string", ["metadata", name.slice("metadata.".length)])
  }
  if (name.startsWith("actor.attributes.") && name.length > "actor.attributes.".length) {
    return field(name, "string", ["actor", "attributes", name.slice("actor.attributes.".length)])
  }
  if (name.startsWith("payload.")) {
    const segments = name.slice("payload.".length).split(".")
    if (segments.some((s) => s === "")) return `field "${name}" has an empty path segment`
    return field(name, "unknown", ["payload", ...segments])
  }
  return `unknown field "${name}"; a condition reads one of ${fieldList}`
}

// -----------------------------------------------------------------------------
// conditions: the static check
// -----------------------------------------------------------------------------

/** A value a condition compares with. */
type Scalar = string | number | boolean | null

/**
 * The comparison operators, in the order the documentation lists them.
 *
 * @internal
 */
export const operators = ["eq", "ne", "in", "gt", "ge", "lt", "le", "glob", "exists"] as const

type Operator = typeof operators[number]

const isOperator = (key: string): key is Operator => (operators as ReadonlyArray<string>).includes(key)

const combinators = ["all", "any", "not"] as const

/**
 * A problem found in a condition, at `path` below the condition.
 *
 * @internal
 */
export interface ConditionIssue {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const isScalar = (u: unknown): u is Scalar =>
  u === null || typeof u === "string" || typeof u === "boolean" || (typeof u === "number" && Number.isFinite(u))

const show = (u: unknown): string => {
  const text = JSON.stringify(u)
  return text === undefined ? String(u) : text.length > 60 ? `${text.slice(0, 59)}…` : text
}

const typeName = (u: unknown): string =>
  u === null ? "null" : Array.isArray(u) ? "an array" : typeof u === "object" ? "an object" : `a ${typeof u}`

/**
 * Conditions nest at most this deep: deeper is certainly a mistake, and would
 * strain the stack of the (recursive) check, compilation and evaluation.
 *
 * @internal
 */
export const maxConditionDepth = 32

const maxDepth = maxConditionDepth

/**
 * Checks a condition as written in a rules document: its shape (one operator
 * per comparison, one combinator per group, no unknown key), that its field
 * exists, and that operator and operand suit the field's type. Every problem
 * is reported, with its path.
 *
 * @internal
 */
export const checkCondition = (input: unknown): ReadonlyArray<ConditionIssue> => {
  const issues: Array<ConditionIssue> = []
  check(input, [], 0, issues)
  return issues
}

const check = (
  input: unknown,
  path: ReadonlyArray<string | number>,
  depth: number,
  issues: Array<ConditionIssue>
): void => {
  const fail = (message: string, at: ReadonlyArray<string | number> = path): void => {
    issues.push({ path: at, message })
  }
  if (!isRecord(input)) {
    return fail(
      `a condition is an object ({ field, <operator> } or { all | any | not }), not ${typeName(input)}`
    )
  }
  if (depth >= maxDepth) return fail(`conditions nest at most ${maxDepth} levels deep`)
  const keys = Object.keys(input)
  const groups = keys.filter((k) => (combinators as ReadonlyArray<string>).includes(k))
  if (groups.length > 0) {
    if (groups.length > 1) {
      return fail(`a group has exactly one of all, any, not; found ${groups.join(" and ")}`, [...path, groups[1]!])
    }
    const group = groups[0]!
    for (const key of keys) {
      if (key !== group) fail(`unknown field "${key}" in a "${group}" group (it holds only "${group}")`, [...path, key])
    }
    const inner = input[group]
    if (group === "not") return check(inner, [...path, "not"], depth + 1, issues)
    if (!Array.isArray(inner)) return fail(`"${group}" takes a list of conditions, not ${typeName(inner)}`, [...path, group])
    if (inner.length === 0) return fail(`"${group}" needs at least one condition`, [...path, group])
    inner.forEach((child, i) => check(child, [...path, group, i], depth + 1, issues))
    return
  }
  const ops = keys.filter(isOperator)
  for (const key of keys) {
    if (key !== "field" && !isOperator(key)) {
      fail(
        `unknown field "${key}" in a condition; a comparison is { field, <one of ${operators.join(", ")}> }, a group { all | any | not }`,
        [...path, key]
      )
    }
  }
  if (!hasOwn.call(input, "field")) {
    if (ops.length > 0) fail(`a comparison needs "field", the field it reads (${ops[0]} has nothing to compare)`)
    else if (keys.length === 0) fail(`an empty condition; write { field, <operator> } or { all | any | not }`)
    return
  }
  if (typeof input.field !== "string") return fail(`"field" is a field name, not ${typeName(input.field)}`, [...path, "field"])
  const field = parseField(input.field)
  if (typeof field === "string") fail(field, [...path, "field"])
  if (ops.length === 0) return fail(`a comparison needs one operator: ${operators.join(", ")}`)
  if (ops.length > 1) {
    return fail(`a comparison has exactly one operator; found ${ops.join(" and ")}`, [...path, ops[1]!])
  }
  if (typeof field === "string") return
  const op = ops[0]!
  const message = checkOperand(field, op, input[op])
  if (message !== undefined) fail(message, [...path, op])
}

/** Why `operand` does not suit `op` on `field`, or `undefined` when it does. */
const checkOperand = (field: Field, op: Operator, operand: unknown): string | undefined => {
  const name = field.name
  if (op === "exists") return typeof operand === "boolean" ? undefined : `exists takes true or false, not ${show(operand)}`
  switch (field.type) {
    case "roles":
      if (op !== "in") return `${name} is a list of roles: compare it with in (holds any of) or exists, not ${op}`
      return checkList(operand, (u) => typeof u === "string" ? undefined : `${name} holds strings; ${show(u)} is not one`)
    case "principalKind":
    case "string": {
      const allowed = field.type === "principalKind" ? principalKinds : undefined
      const value = (u: unknown): string | undefined =>
        typeof u !== "string"
          ? `${name} is a string; ${show(u)} is not`
          : allowed !== undefined && !allowed.includes(u)
          ? `${name} is one of ${allowed.join(", ")}; ${show(u)} never matches`
          : undefined
      switch (op) {
        case "eq":
        case "ne":
          return value(operand)
        case "in":
          return checkList(operand, value)
        case "glob":
          return typeof operand === "string" ? undefined : `glob takes a pattern string, not ${show(operand)}`
        default:
          return `${name} is a string: ${op} compares numbers, which only payload fields may hold`
      }
    }
    case "unknown":
      switch (op) {
        case "eq":
        case "ne":
          return isScalar(operand) ? undefined : `${op} compares with a string, number, boolean or null, not ${typeName(operand)}`
        case "in":
          return checkList(operand, (u) => isScalar(u) ? undefined : `in lists strings, numbers, booleans or null; ${show(u)} is not one`)
        case "glob":
          return typeof operand === "string" ? undefined : `glob takes a pattern string, not ${show(operand)}`
        default:
          return typeof operand === "number" && Number.isFinite(operand)
            ? undefined
            : `${op} compares with a number, not ${show(operand)}`
      }
  }
}

const checkList = (operand: unknown, item: (u: unknown) => string | undefined): string | undefined => {
  if (!Array.isArray(operand)) return `in takes a non-empty list, not ${typeName(operand)}`
  if (operand.length === 0) return `in takes a non-empty list (an empty one never matches)`
  for (const u of operand) {
    const problem = item(u)
    if (problem !== undefined) return problem
  }
  return undefined
}

// -----------------------------------------------------------------------------
// conditions: compilation and three-valued evaluation
// -----------------------------------------------------------------------------

/**
 * The outcome of a condition that could not be decided: the field it could
 * not read, and why.
 *
 * @internal
 */
export interface Indeterminate {
  readonly field: string
  readonly why: string
}

/**
 * A compiled condition: `true`, `false`, or {@link Indeterminate} (a field
 * missing or of another type than the comparison needs).
 *
 * @internal
 */
export type Compiled = (action: Action.Action) => boolean | Indeterminate

const missing = (field: string): Indeterminate => ({ field, why: "is missing" })
const wrongType = (field: string, value: unknown, wanted: string): Indeterminate => ({
  field,
  why: `is ${typeName(value)}, not ${wanted}`
})

const scalarType = (u: Scalar): string => u === null ? "null" : typeof u

/**
 * Compiles a condition that {@link checkCondition} accepted.
 *
 * @internal
 */
export const compileCondition = (input: unknown): Compiled => {
  const c = input as Record<string, unknown>
  if (hasOwn.call(c, "all")) {
    const children = (c.all as ReadonlyArray<unknown>).map(compileCondition)
    return (action) => {
      let unknown: Indeterminate | undefined
      for (const child of children) {
        const r = child(action)
        if (r === false) return false
        if (r !== true) unknown ??= r
      }
      return unknown ?? true
    }
  }
  if (hasOwn.call(c, "any")) {
    const children = (c.any as ReadonlyArray<unknown>).map(compileCondition)
    return (action) => {
      let unknown: Indeterminate | undefined
      for (const child of children) {
        const r = child(action)
        if (r === true) return true
        if (r !== false) unknown ??= r
      }
      return unknown ?? false
    }
  }
  if (hasOwn.call(c, "not")) {
    const child = compileCondition(c.not)
    return (action) => {
      const r = child(action)
      return typeof r === "boolean" ? !r : r
    }
  }
  const field = parseField(c.field as string) as Field
  const name = field.name
  const get = field.get
  const op = operators.find((o) => hasOwn.call(c, o))!
  const operand = c[op]
  switch (op) {
    case "exists":
      return field.type === "roles"
        ? (action) => hasRole(get(action) as ReadonlyArray<unknown>) === operand
        : (action) => (get(action) !== undefined) === operand
    case "eq":
    case "ne": {
      const expected = operand as Scalar
      const wanted = scalarType(expected)
      const negate = op === "ne"
      return (action) => {
        const value = get(action)
        if (value === undefined) return missing(name)
        if (!isScalar(value) || scalarType(value) !== wanted) return wrongType(name, value, `a ${wanted}`)
        return (typeof expected === "string" ? isText(value, expected) : value === expected) !== negate
      }
    }
    case "in": {
      const list = operand as ReadonlyArray<Scalar>
      if (field.type === "roles") {
        const wanted = new Set(list as ReadonlyArray<string>)
        return (action) => holdsAny(get(action) as ReadonlyArray<unknown>, wanted)
      }
      const types = new Set(list.map(scalarType))
      const set = new Set<Scalar>(list)
      return (action) => {
        const value = canonical(get(action))
        if (value === undefined) return missing(name)
        if (!isScalar(value) || !types.has(scalarType(value))) {
          return wrongType(name, value, Array.from(types).map((t) => `a ${t}`).join(" or "))
        }
        return set.has(value)
      }
    }
    case "glob": {
      const matches = compileGlob(operand as string)
      return (action) => {
        const value = get(action)
        if (value === undefined) return missing(name)
        if (typeof value !== "string") return wrongType(name, value, "a string")
        return matches(nfc(value))
      }
    }
    default: {
      const bound = operand as number
      const compare: (value: number) => boolean = op === "gt"
        ? (v) => v > bound
        : op === "ge"
        ? (v) => v >= bound
        : op === "lt"
        ? (v) => v < bound
        : (v) => v <= bound
      return (action) => {
        const value = get(action)
        if (value === undefined) return missing(name)
        if (typeof value !== "number" || !Number.isFinite(value)) return wrongType(name, value, "a number")
        return compare(value)
      }
    }
  }
}

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
 * The configurable size limits of a rules document.
 *
 * @internal
 */
export interface Limits {
  readonly maxRules: number
  readonly maxValues: number
  readonly maxGlobLength: number
}

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
