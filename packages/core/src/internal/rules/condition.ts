/**
 * Conditions (`when`): the static check of a condition as written (shape,
 * known field, operator and operand suited to the field's type), and its
 * compilation into a plain function of three-valued outcome. No `eval`.
 */
import type * as Action from "../../Action.js"
import { nfc } from "../canonical.js"
import { compileGlob } from "./glob.js"
import { show } from "./problems.js"
import { canonical, type Field, hasRole, holdsAny, isText, parseField, principalKinds } from "./read.js"

const hasOwn = Object.prototype.hasOwnProperty

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
 * A group: `all` when `decisive` is `false` (the first false child decides),
 * `any` when it is `true` (the first true one does). Otherwise the group is
 * indeterminate when a child is (the first such child's outcome), and
 * `!decisive` when none is.
 */
const group = (children: ReadonlyArray<Compiled>, decisive: boolean): Compiled => {
  const otherwise = !decisive
  return (action) => {
    let unknown: Indeterminate | undefined
    for (const child of children) {
      const r = child(action)
      if (r === decisive) return decisive
      if (typeof r !== "boolean") unknown ??= r
    }
    return unknown ?? otherwise
  }
}

/**
 * Compiles a condition that {@link checkCondition} accepted.
 *
 * @internal
 */
export const compileCondition = (input: unknown): Compiled => {
  const c = input as Record<string, unknown>
  if (hasOwn.call(c, "all")) return group((c.all as ReadonlyArray<unknown>).map(compileCondition), false)
  if (hasOwn.call(c, "any")) return group((c.any as ReadonlyArray<unknown>).map(compileCondition), true)
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
