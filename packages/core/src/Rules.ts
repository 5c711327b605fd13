/**
 * Declarative rules: a rules document (JSON, or YAML through
 * `@gavel/adapters/RulesFile`) decoded with Schema and compiled into the same
 * `Policy` values as code, so rules and code policies compose.
 *
 * A document names a policy set (`id`, `version`), how its rules combine
 * (`first-applicable` or `deny-wins`), an optional `default` effect, and the
 * rules: each a `match` (kind, name glob, roles, tenant, resource), optional
 * conditions (`when`: a small typed language over the action's fields — no
 * `eval`, no regular expressions), an effect and a reason. A document with
 * any problem is refused as a whole ({@link InvalidRules}), every problem
 * named by rule and path. See docs/rules.md for the reference.
 *
 * @example
 * ```ts
 * import { Action, PolicySet, Rules } from "@gavel/core"
 * import * as Effect from "effect/Effect"
 *
 * const rules = Effect.runSync(Rules.decode({
 *   id: "tools",
 *   version: "1",
 *   combine: "first-applicable",
 *   default: "deny",
 *   rules: [
 *     { id: "no-shell", match: { name: "shell.*" }, effect: "deny",
 *       reason: { code: "tool.blocked", message: "Shell access is not allowed" } },
 *     { id: "operators", match: { roles: ["operator"] }, effect: "allow" }
 *   ]
 * }))
 *
 * const record = PolicySet.evaluateSync(Rules.policySet(rules), Action.make({
 *   actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
 *   kind: "tool",
 *   name: "search"
 * }))
 * record.decision._tag // "Allow"
 * ```
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import type * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import * as DecisionRecord from "./DecisionRecord.js"
import { canonicalJson, nfc, sha256Hex } from "./internal/canonical.js"
import * as decisionInternal from "./internal/decision.js"
import * as json from "./internal/json.js"
import * as policyInternal from "./internal/policy.js"
import * as internal from "./internal/rules.js"
import * as Policy from "./Policy.js"
import * as PolicySet from "./PolicySet.js"

// -----------------------------------------------------------------------------
// the document
// -----------------------------------------------------------------------------

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const nonEmpty = (what: string) =>
  Schema.String.pipe(Schema.filter((s) => s.trim() !== "" || `${what} must not be empty`))

const idPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/

const Id = Schema.String.pipe(
  Schema.filter((s) =>
    idPattern.test(s) ||
    `${JSON.stringify(s)} is not a valid id: letters, digits, ".", "_", ":" and "-", starting with a letter or digit`
  )
)

const nonEmptyList = <S extends Schema.Schema.Any>(item: S, what: string) =>
  Schema.Array(item).pipe(Schema.filter((items) => items.length > 0 || `${what} must list at least one`))

const literals = <const L extends ReadonlyArray<string>>(values: L, what: string) =>
  Schema.Literal(...values).annotations({
    message: (issue) => ({
      message: `unknown ${what} ${show(issue.actual)}; expected one of ${values.join(", ")}`,
      override: true
    })
  })

const show = (u: unknown): string => {
  const text = JSON.stringify(u)
  return text === undefined ? String(u) : text.length > 60 ? `${text.slice(0, 59)}…` : text
}

const ruleEffects = [
  "allow",
  "deny",
  "warn",
  "pending",
  "require-approval",
  "require-acknowledgment",
  "escalate",
  "defer"
] as const

/**
 * What a rule decides: `allow`, `deny`, `warn`, `pending` (or its synonym
 * `require-approval`), `require-acknowledgment`, `escalate` or `defer`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RuleEffect = literals(ruleEffects, "effect")

/**
 * @since 0.1.0
 * @category models
 */
export type RuleEffect = typeof RuleEffect.Type

const defaultEffects = ["allow", "warn", "deny", "defer"] as const

/**
 * What a document decides when no rule applies: `allow`, `warn`, `deny` or
 * `defer` (an approval needs settings: write it as a catch-all rule).
 *
 * @since 0.1.0
 * @category schemas
 */
export const DefaultEffect = literals(defaultEffects, "default effect")

/**
 * @since 0.1.0
 * @category models
 */
export type DefaultEffect = typeof DefaultEffect.Type

/**
 * How rules combine: `first-applicable` (the first rule that applies
 * decides; order matters) or `deny-wins` (every rule that applies
 * contributes; the most restrictive decision wins, `Policy.all`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Combine = literals(["first-applicable", "deny-wins"], "combine")

/**
 * @since 0.1.0
 * @category models
 */
export type Combine = typeof Combine.Type

/**
 * A reason as a rule writes it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RuleReason = Schema.Struct({
  code: nonEmpty("a reason code"),
  message: Schema.String
}).annotations({ identifier: "RuleReason" })

/**
 * @since 0.1.0
 * @category models
 */
export interface RuleReason extends Schema.Schema.Type<typeof RuleReason> {}

/**
 * The largest `approval.timeoutSeconds`: 366 days (31,622,400 seconds). An
 * approval is a person's answer; a longer wait is a mistake, and a far
 * larger one (`8640000000000`) would put its expiry past what a date can
 * hold.
 *
 * @since 0.1.0
 * @category models
 */
export const maxTimeoutSeconds: number = 366 * 24 * 60 * 60

/**
 * The largest `approval.quorum`: 1,000 distinct approvers.
 *
 * @since 0.1.0
 * @category models
 */
export const maxQuorum: number = 1_000

const atMost = <S extends Schema.Schema<number, number>>(schema: S, what: string, max: number, unit = "") =>
  schema.pipe(Schema.filter((n) => n <= max || `${what} is at most ${max}${unit}, not ${n}`))

/**
 * Who may approve (or acknowledge) and how: `quorum` distinct approvers
 * holding one of `roles` or listed in `principals`, the requester excluded
 * unless `separationOfDuties` is `false`, within `timeoutSeconds`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ApprovalSettings = Schema.Struct({
  quorum: optional(atMost(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), "quorum", maxQuorum)),
  roles: optional(Schema.Array(nonEmpty("a role"))),
  principals: optional(Schema.Array(nonEmpty("a principal"))),
  separationOfDuties: optional(Schema.Boolean),
  timeoutSeconds: optional(
    atMost(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), "timeoutSeconds", maxTimeoutSeconds, " (366 days)")
  )
}).annotations({ identifier: "ApprovalSettings" })

/**
 * @since 0.1.0
 * @category models
 */
export interface ApprovalSettings extends Schema.Schema.Type<typeof ApprovalSettings> {}

/**
 * Which actions a rule is about; every field is optional and all given ones
 * must hold. `name` and `resource.id` are globs (`*`, `?`); `roles` holds
 * when the actor has at least one of them; `tenant` is the actor's tenant.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Match = Schema.Struct({
  kind: optional(nonEmpty("kind")),
  name: optional(nonEmpty("a name pattern")),
  roles: optional(nonEmptyList(Schema.String, "roles")),
  tenant: optional(Schema.String),
  resource: optional(Schema.Struct({ type: optional(Schema.String), id: optional(Schema.String) }))
}).annotations({ identifier: "RuleMatch" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Match extends Schema.Schema.Type<typeof Match> {}

/**
 * A scalar a comparison compares with.
 *
 * @since 0.1.0
 * @category models
 */
export type Scalar = string | number | boolean | null

/**
 * A comparison: `field` and exactly one operator.
 *
 * @since 0.1.0
 * @category models
 */
export interface Comparison {
  readonly field: string
  readonly eq?: Scalar
  readonly ne?: Scalar
  readonly in?: ReadonlyArray<Scalar>
  readonly gt?: number
  readonly ge?: number
  readonly lt?: number
  readonly le?: number
  readonly glob?: string
  readonly exists?: boolean
}

/**
 * A condition: a {@link Comparison}, or a group (`all`, `any`, `not`).
 *
 * @since 0.1.0
 * @category models
 */
export type Condition =
  | Comparison
  | { readonly all: ReadonlyArray<Condition> }
  | { readonly any: ReadonlyArray<Condition> }
  | { readonly not: Condition }

const conditionIssue = (ast: Schema.Schema.AnyNoContext["ast"], input: unknown) =>
(issue: internal.ConditionIssue): ParseResult.ParseIssue => {
  const leaf = new ParseResult.Type(ast, input, issue.message)
  const [head, ...tail] = issue.path
  return head === undefined ? leaf : new ParseResult.Pointer([head, ...tail], input, leaf)
}

/**
 * A condition, checked as a whole: shape, known field, and operator and
 * operand suited to the field's type (`name gt 5` is refused). The check is
 * hand-written rather than a union of structs so that each problem is named
 * precisely instead of as the failure of every alternative.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Condition: Schema.Schema<Condition> = Schema.declare([], {
  decode: () => (input, _, ast) => {
    const issues = internal.checkCondition(input)
    if (issues.length === 0) return ParseResult.succeed(input as Condition)
    const all = issues.map(conditionIssue(ast, input))
    return ParseResult.fail(
      all.length === 1 ? all[0]! : new ParseResult.Composite(ast, input, all as [ParseResult.ParseIssue, ...Array<ParseResult.ParseIssue>])
    )
  },
  encode: () => (input) => ParseResult.succeed(input as Condition)
}, {
  identifier: "RuleCondition",
  jsonSchema: { type: "object" }
})

/**
 * One rule.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Rule = Schema.Struct({
  id: Id,
  description: optional(Schema.String),
  match: optional(Match),
  when: optional(Condition),
  effect: RuleEffect,
  reason: optional(RuleReason),
  approval: optional(ApprovalSettings),
  reviewPath: optional(nonEmpty("reviewPath"))
}).annotations({ identifier: "Rule" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Rule extends Schema.Schema.Type<typeof Rule> {}

const headerFields = {
  id: Id,
  version: nonEmpty("version"),
  description: optional(Schema.String),
  combine: Combine,
  default: optional(DefaultEffect),
  defaultReason: optional(RuleReason)
}

const DocumentStructure = Schema.Struct({ ...headerFields, rules: Schema.Array(Rule) }).pipe(
  Schema.filter((document) =>
    crossChecks(document.combine, document.rules.map((rule, index) => ({ index, raw: rule, rule }))).map((p) => ({
      path: p.path,
      message: p.message
    }))
  )
)

/**
 * A rules document, structure and cross-rule checks included: decoding it
 * with `onExcessProperty: "error"` refuses everything {@link decode} refuses
 * (but {@link decode} reports the problems of every rule even when some do
 * not decode, and names them by rule), the {@link defaultLimits} included.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RulesDocument: Schema.Schema<
  Schema.Schema.Type<typeof DocumentStructure>,
  Schema.Schema.Encoded<typeof DocumentStructure>
> = Schema.declare([DocumentStructure], {
  // The bounds (with the default limits) are checked by an iterative walk
  // before the structure's recursive decoding can overflow on the input;
  // the structure decodes the document's canonical form (strings in NFC).
  decode: (structure) => (input, options, ast) => {
    const bounds = internal.checkBounds(input, defaultLimits)
    if (bounds.length === 0) return ParseResult.decodeUnknown(structure)(internal.canonicalDocument(input), options)
    const issues = bounds.map(conditionIssue(ast, input))
    return ParseResult.fail(
      issues.length === 1 ? issues[0]! : new ParseResult.Composite(ast, input, issues as [ParseResult.ParseIssue, ...Array<ParseResult.ParseIssue>])
    )
  },
  encode: (structure) => (input, options) => ParseResult.encodeUnknown(structure)(input, options)
}, { identifier: "RulesDocument" })

/**
 * @since 0.1.0
 * @category models
 */
export interface RulesDocument extends Schema.Schema.Type<typeof RulesDocument> {}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * One problem of a rules document: the rule it is in (its id, or `#index`
 * when it has no usable id; `null` for the document's own fields), the path
 * to the offending value (`rules[3].when.all[0].gt`), and what is wrong.
 * `line` and `column` (1-based) are set when the document came from a text
 * ({@link parseJson}, or a file read by `@gavel/adapters`' `RulesFile`).
 *
 * @since 0.1.0
 * @category errors
 */
export const Problem = Schema.Struct({
  rule: Schema.NullOr(Schema.String),
  path: Schema.String,
  message: Schema.String,
  line: Schema.optional(Schema.Int),
  column: Schema.optional(Schema.Int)
}).annotations({ identifier: "RulesProblem" })

/**
 * @since 0.1.0
 * @category errors
 */
export interface Problem extends Schema.Schema.Type<typeof Problem> {}

const pathSegment = /[^.[\]]+|\[\d+\]/g

/** A very long path (too deep a nesting) by its first segments: `rules[0].when.not.not…(70 more)`. */
const abbreviate = (path: string): string => {
  const segments = path.match(pathSegment) ?? []
  if (segments.length <= 16) return path
  const head = segments.slice(0, 12).map((s, i) => i === 0 || s.startsWith("[") ? s : `.${s}`).join("")
  return `${head}…(${segments.length - 12} more)`
}

/**
 * A problem on one line: `rule "large-payment" at rules[1].when.gt (line 9,
 * column 7): gt compares with a number, not "big"`. A path of more than 16
 * segments is shortened to its first 12: `rules[0].when.not.not…(70 more)`.
 *
 * @since 0.1.0
 * @category errors
 */
export const formatProblem = (problem: Problem): string => {
  const where = problem.path === "" ? "document" : abbreviate(problem.path)
  const position = problem.line === undefined
    ? ""
    : ` (line ${problem.line}${problem.column === undefined ? "" : `, column ${problem.column}`})`
  const rule = problem.rule === null ? "" : `rule ${JSON.stringify(problem.rule)} `
  return `${rule}at ${where}${position}: ${problem.message}`.replace(/\s*\n\s*/g, " ")
}

/**
 * A rules document was refused, as a whole: nothing of it is loaded.
 * `problems` lists every problem found; `source` is the file it came from,
 * when there is one.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRules extends Schema.TaggedError<InvalidRules>()("InvalidRules", {
  source: Schema.optional(Schema.String),
  problems: Schema.Array(Problem)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const n = this.problems.length
    const head = `Invalid rules document${this.source === undefined ? "" : ` "${this.source}"`} (${n} ${
      n === 1 ? "problem" : "problems"
    })`
    return [head, ...this.problems.map((p) => `  ${formatProblem(p)}`)].join("\n")
  }
}

// -----------------------------------------------------------------------------
// decoding
// -----------------------------------------------------------------------------

type Path = ReadonlyArray<PropertyKey>

/**
 * A path as the documentation writes it: `rules[3].when.all[0].gt`.
 *
 * @since 0.1.0
 * @category errors
 */
export const formatPath = (path: Path): string =>
  path.map((key, i) => typeof key === "number" ? `[${key}]` : `${i === 0 ? "" : "."}${String(key)}`).join("")

const parseOptions = { errors: "all", onExcessProperty: "error" } as const

const expectedKeys = /expected: (.*)$/s

/** The issues of a parse error, as problems, with the messages made to read as the documentation does. */
const issuesOf = (error: ParseResult.ParseError, prefix: Path): Array<{ path: Path; message: string }> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => {
    const path = [...prefix, ...issue.path]
    const last = issue.path[issue.path.length - 1]
    switch (issue._tag) {
      case "Unexpected": {
        const expected = expectedKeys.exec(issue.message)?.[1]?.replace(/"/g, "").replace(/ \| /g, ", ")
        return {
          path,
          message: `unknown field ${JSON.stringify(String(last))}${expected === undefined ? "" : `; expected one of ${expected}`}`
        }
      }
      case "Missing":
        return { path, message: `missing required field ${JSON.stringify(String(last))}` }
      default:
        return {
          path,
          message: objectExpected.test(issue.message)
            ? `expected an object, not ${show(actualOf(issue.message))}`
            : issue.message.length > 200
            // Schema's messages quote the whole value at fault ("Expected string, actual [1,1,…]").
            ? `${issue.message.slice(0, 199)}…`
            : issue.message
        }
    }
  })

/** A struct's own type failure: its message is "Expected <identifier or type>, actual …". */
const objectExpected = /^Expected (\{|Rule,|RuleMatch,|RuleReason,|ApprovalSettings,)/

const actualOf = (message: string): unknown => {
  const at = message.lastIndexOf(", actual ")
  const text = at === -1 ? "" : message.slice(at + ", actual ".length)
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const decodeHeader = Schema.decodeUnknownEither(
  Schema.Struct({ ...headerFields, rules: Schema.Array(Schema.Unknown) }),
  parseOptions
)
const decodeRule = Schema.decodeUnknownEither(Rule, parseOptions)

interface Entry {
  readonly index: number
  /** The rule as written (its `id` names it in problems even when it does not decode). */
  readonly raw: unknown
  /** The decoded rule, when it decodes. */
  readonly rule: Rule | undefined
}

interface Located {
  readonly path: Path
  readonly message: string
}

const approvalEffects: ReadonlyArray<RuleEffect> = ["pending", "require-approval"]

const isCatchAll = (rule: Rule): boolean =>
  rule.when === undefined &&
  (rule.match === undefined ||
    (rule.match.kind === undefined && rule.match.name === undefined && rule.match.roles === undefined &&
      rule.match.tenant === undefined &&
      (rule.match.resource === undefined ||
        (rule.match.resource.type === undefined && rule.match.resource.id === undefined))))

/** What a rule as written holds in its own `id` field. */
const ownId = (raw: unknown): unknown =>
  typeof raw === "object" && raw !== null && Object.prototype.hasOwnProperty.call(raw, "id")
    ? (raw as { id?: unknown }).id
    : undefined

const isRuleId = (id: unknown): id is string => typeof id === "string" && idPattern.test(id)

/** The rule's id as written when it is a valid one: a rule with none, or an invalid one, is named `#<index>`. */
const rawId = (raw: unknown): string | undefined => {
  const id = ownId(raw)
  return isRuleId(id) ? id : undefined
}

/**
 * How a problem names the rule at `index` whose `id` field holds `id`: the
 * id when it is a valid one, `#<index>` otherwise (no id, or an invalid one).
 * For loaders that report problems of their own (a YAML tag, a duplicate
 * key) in the same words as {@link decode}.
 *
 * @since 0.1.0
 * @category problems
 */
export const ruleName = (id: unknown, index: number): string => isRuleId(id) ? id : `#${index}`

/** What can only be seen across fields or across rules. */
const crossChecks = (combine: Combine | undefined, entries: ReadonlyArray<Entry>): Array<Located> => {
  const problems: Array<Located> = []
  const seen = new Map<string, number>()
  let catchAll: { readonly index: number; readonly id: string } | undefined
  for (const { index, raw, rule } of entries) {
    const at = (...path: Array<PropertyKey>): Path => ["rules", index, ...path]
    const id = rawId(raw)
    if (id === "default") {
      problems.push({ path: at("id"), message: `the rule id "default" is reserved for the document's default` })
    } else if (id !== undefined) {
      const first = seen.get(id)
      if (first !== undefined) {
        problems.push({ path: at("id"), message: `duplicate rule id ${JSON.stringify(id)} (first used by rules[${first}])` })
      } else {
        seen.set(id, index)
      }
    }
    if (catchAll !== undefined && combine === "first-applicable") {
      problems.push({
        path: at(),
        message: `unreachable: rule ${JSON.stringify(catchAll.id)} (rules[${catchAll.index}]) before it matches every action, and first-applicable stops there`
      })
    }
    if (rule === undefined) continue
    if (catchAll === undefined && isCatchAll(rule)) catchAll = { index, id: rule.id }
    const effect = rule.effect
    if (effect !== "allow" && rule.reason === undefined) {
      problems.push({
        path: at("reason"),
        message: `missing required field "reason": a ${effect} rule says why, with reason { code, message }`
      })
    }
    if (rule.reviewPath !== undefined && effect !== "escalate") {
      problems.push({ path: at("reviewPath"), message: `reviewPath applies only to escalate, not ${effect}` })
    }
    const approval = rule.approval
    const isApproval = approvalEffects.includes(effect)
    if (approval === undefined) {
      if (isApproval || effect === "require-acknowledgment") {
        problems.push({
          path: at("approval"),
          message: `missing required field "approval": a ${effect} rule names who may ${
            isApproval ? "approve" : "acknowledge"
          } (approval.roles or approval.principals)`
        })
      }
      continue
    }
    if (!isApproval && effect !== "require-acknowledgment") {
      problems.push({
        path: at("approval"),
        message: `approval settings apply only to pending, require-approval and require-acknowledgment, not ${effect}`
      })
      continue
    }
    const roles = approval.roles ?? []
    const principals = approval.principals ?? []
    if (roles.length === 0 && principals.length === 0) {
      problems.push({
        path: at("approval"),
        message: `no one may ${isApproval ? "approve" : "acknowledge"}: list approval.roles or approval.principals`
      })
    }
    if (!isApproval) {
      for (const key of ["quorum", "separationOfDuties", "timeoutSeconds"] as const) {
        if (approval[key] !== undefined) {
          problems.push({ path: at("approval", key), message: `${key} applies only to approvals, not require-acknowledgment` })
        }
      }
      continue
    }
    const quorum = approval.quorum ?? 1
    const eligible = new Set(principals).size
    if (roles.length === 0 && eligible > 0 && quorum > eligible) {
      problems.push({
        path: at("approval", "quorum"),
        message: `quorum ${quorum} can never be reached: only ${eligible} ${
          eligible === 1 ? "principal is" : "principals are"
        } eligible (approval.principals) and no role is`
      })
    }
  }
  return problems
}

/** The rule a path is in, named by the rules as written (`raws`: the document's `rules`, whatever it is). */
const nameOf = (raws: unknown, path: Path): string | null => {
  if (path[0] !== "rules" || typeof path[1] !== "number" || !Array.isArray(raws) || path[1] >= raws.length) return null
  return ruleName(ownId(raws[path[1]]), path[1])
}

/** Problems, sorted by where they are in the document (then as found). */
const toProblems = (located: ReadonlyArray<Located>, raws: unknown): Array<Problem> =>
  located
    .map((p, order) => ({ p, order }))
    .sort((a, b) => {
      const ia = a.p.path[0] === "rules" && typeof a.p.path[1] === "number" ? a.p.path[1] : -1
      const ib = b.p.path[0] === "rules" && typeof b.p.path[1] === "number" ? b.p.path[1] : -1
      return ia - ib || a.order - b.order
    })
    .map(({ p }) => ({ rule: nameOf(raws, p.path), path: formatPath(p.path), message: p.message }))

const decodeDocument = (written: unknown, limits: Limits): Either.Either<RulesDocument, ReadonlyArray<Problem>> => {
  if (typeof written !== "object" || written === null || Array.isArray(written)) {
    return Either.left([{
      rule: null,
      path: "",
      message: `a rules document is an object with id, version, combine and rules, not ${
        written === null ? "null" : Array.isArray(written) ? "a list" : `a ${typeof written}`
      }`
    }])
  }
  // Bounds first, by an iterative walk: nothing recursive (Schema decoding,
  // error formatting, compilation) runs on a document that exceeds them.
  const bounds = internal.checkBounds(written, limits)
  if (bounds.some((issue) => issue.fatal)) return Either.left(toProblems(bounds, (written as { rules?: unknown }).rules))
  // From here on the document is read in its canonical form (strings in NFC).
  const input = internal.canonicalDocument(written) as Record<string, unknown>
  const rawRules = input.rules
  const located: Array<Located> = [...bounds]
  const add = (problems: ReadonlyArray<Located>) => {
    // Not `push(...problems)`: a long list would overflow the arguments.
    for (const problem of problems) located.push(problem)
  }
  const header = decodeHeader(input)
  if (Either.isLeft(header)) add(issuesOf(header.left, []))
  const entries: Array<Entry> = []
  if (Array.isArray(rawRules)) {
    rawRules.forEach((raw: unknown, index) => {
      const decoded = decodeRule(raw)
      if (Either.isLeft(decoded)) add(issuesOf(decoded.left, ["rules", index]))
      entries.push({ index, raw, rule: Either.getOrUndefined(decoded) })
    })
  }
  // The combination decides reachability even when other header fields are wrong.
  const rawCombine = input.combine
  const combine = Schema.is(Combine)(rawCombine) ? rawCombine : undefined
  add(crossChecks(combine, entries))
  if (located.length > 0 || Either.isLeft(header)) return Either.left(toProblems(located, rawRules))
  const { rules: _rules, ...fields } = header.right
  return Either.right({ ...fields, rules: entries.map((e) => e.rule!) })
}

// -----------------------------------------------------------------------------
// compiled rules
// -----------------------------------------------------------------------------

/**
 * A decoded, compiled rules document.
 *
 * - `policy`: the whole document as one synchronous policy, default
 *   included — it never abstains when the document has a `default`. For a
 *   policy that abstains when no rule applies (to compose with code
 *   policies under a default of the host's), leave `default` out.
 * - `document`: the decoded document, every string in Unicode NFC — the
 *   form the rules compare an action's text in (read in NFC too) and the
 *   form `policyHash` hashes, so that equal hashes decide alike.
 * - `policyHash`: SHA-256 of the canonical JSON of the decoded document: key
 *   order, whitespace, Unicode normalization form and the file's format
 *   (JSON or YAML) do not change it; any change of content does.
 *
 * Build it with {@link decode} (or {@link parseJson}): {@link policySet} and
 * {@link explain} use the compiled rules kept for that value.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rules {
  readonly id: string
  readonly version: string
  readonly combine: Combine
  readonly document: RulesDocument
  readonly policyHash: string
  readonly policy: Policy.Sync
}

interface CompiledRule {
  readonly id: string
  /**
   * The literal name of its `match`, when it has one: the rule is then only
   * reached through the index by name, which tests it, so `policy` does not
   * test it again (an explanation tests it before evaluating `policy`).
   */
  readonly name: string | undefined
  readonly policy: Policy.Sync
}

interface Compiled {
  /** Each rule's policy, in document order. */
  readonly rules: ReadonlyArray<CompiledRule>
  /** The rules combined, without the default. */
  readonly combined: Policy.Sync
  readonly default: Decision.Decision | undefined
}

const compiled = new WeakMap<Rules, Compiled>()

/** The compiled form; a copy of a decoded value (spread, structured clone) is compiled again from its document. */
const compiledOf = (rules: Rules): Compiled => compiled.get(rules) ?? compiled.get(build(rules.document))!

const makeReason = (documentId: string, ruleId: string, reason: RuleReason): Decision.ReasonInput => ({
  code: reason.code,
  message: reason.message,
  policyId: `${documentId}/${ruleId}`,
  ruleId
})

/** The kind of decision each effect stands for. */
const effectKinds: Record<RuleEffect, decisionInternal.Kind> = {
  allow: "Allow",
  deny: "Deny",
  warn: "Warn",
  pending: "RequireApproval",
  "require-approval": "RequireApproval",
  "require-acknowledgment": "RequireAcknowledgment",
  escalate: "Escalate",
  defer: "Defer"
}

const decisionOf = (
  documentId: string,
  rule: Pick<Rule, "id" | "effect" | "reason" | "approval" | "reviewPath">
): Decision.Decision => {
  // The cross checks guarantee a reason for every effect but allow, and
  // settings only for the effects that take them.
  const approval = rule.approval
  return decisionInternal.ofKind(
    effectKinds[rule.effect],
    rule.reason === undefined ? undefined : makeReason(documentId, rule.id, rule.reason),
    {
      reviewPath: rule.reviewPath,
      roles: approval?.roles,
      principals: approval?.principals,
      quorum: approval?.quorum,
      separationOfDuties: approval?.separationOfDuties,
      timeout: approval?.timeoutSeconds === undefined ? undefined : Duration.seconds(approval.timeoutSeconds)
    }
  )
}

/** A string test: equality for a literal, the glob matcher otherwise, nothing when absent. */
const stringTest = (pattern: string | undefined) => ({
  literal: pattern !== undefined && !internal.hasWildcard(pattern) ? pattern : undefined,
  glob: pattern !== undefined && internal.hasWildcard(pattern) ? pattern : undefined
})

/** The literal name a rule is indexed by, if its `match.name` is one. */
const literalName = (rule: Rule): string | undefined => stringTest(rule.match?.name).literal

const globTest = (glob: string, value: unknown): boolean =>
  typeof value === "string" && internal.globMatch(glob, internal.canonical(value) as string)

const read = internal.read
const isText = internal.isText

/**
 * One function of the same shape for every rule (so the call site stays
 * monomorphic in a document of many rules), testing the most selective field,
 * the name, first. It reads the action as conditions do (`internal.read`):
 * own properties only, strings compared in NFC. A literal name is not tested
 * here: the index by name does (see {@link CompiledRule}).
 */
const compileMatch = (match: Match | undefined): ((action: Action.Action) => boolean) => {
  const nameGlob = stringTest(match?.name).glob
  const kind = match?.kind
  const roles = match?.roles
  const tenant = match?.tenant
  const resource = match?.resource
  const resourceId = stringTest(resource?.id)
  return (a) =>
    (nameGlob === undefined || globTest(nameGlob, read.name(a))) &&
    (kind === undefined || isText(read.kind(a), kind)) &&
    (roles === undefined || internal.holdsAny(read.roles(a), roles)) &&
    (tenant === undefined || isText(read.tenant(a), tenant)) &&
    (resource === undefined || (
      typeof read.resource(a) === "object" && read.resource(a) !== null &&
      (resource.type === undefined || isText(read.resourceType(a), resource.type)) &&
      (resourceId.literal === undefined || isText(read.resourceId(a), resourceId.literal)) &&
      (resourceId.glob === undefined || globTest(resourceId.glob, read.resourceId(a)))
    ))
}

const compileRule = (documentId: string, rule: Rule): Policy.Sync => {
  const policyId = `${documentId}/${rule.id}`
  const matches = compileMatch(rule.match)
  const condition = rule.when === undefined ? undefined : internal.compileCondition(rule.when)
  const decision = decisionOf(documentId, rule)
  return Policy.make(policyId, (action) => {
    if (!matches(action)) return Decision.notApplicable
    if (condition === undefined) return decision
    const outcome = condition(action)
    if (outcome === true) return decision
    if (outcome === false) return Decision.notApplicable
    return Decision.deny({
      code: "rules.indeterminate",
      message: `Rule "${rule.id}" cannot be evaluated: ${outcome.field} ${outcome.why}; failing closed`,
      policyId,
      ruleId: rule.id
    })
  })
}

/** The document's default, as the decision of a rule named `default`, with `rules.default` unless `defaultReason` says otherwise (an allow included). */
const defaultOf = (document: RulesDocument): Decision.Decision | undefined => {
  if (document.default === undefined) return undefined
  const reason = document.defaultReason ?? {
    code: "rules.default",
    message: `No rule of "${document.id}" applied; the document's default is ${document.default}`
  }
  return decisionOf(document.id, { id: "default", effect: document.default, reason })
}

/** The name an action is indexed by, read as `match.name` reads it (as written; the index compares it in NFC). */
const indexName = (action: Action.Action): string | undefined => {
  const name = read.name(action)
  return typeof name === "string" ? name : undefined
}

const build = (document: RulesDocument): Rules => {
  const rules: ReadonlyArray<CompiledRule> = document.rules.map((rule) => ({
    id: rule.id,
    name: literalName(rule),
    policy: compileRule(document.id, rule)
  }))
  const policies = rules.map((r) => r.policy)
  // A rule whose match names one literal action name is only evaluated (and
  // only listed in the trail) for actions of that name: for the others it
  // abstains whatever they hold.
  const combined = policyInternal.indexedByName(
    policies as unknown as ReadonlyArray<policyInternal.Node>,
    rules.map((rule) => rule.name === undefined ? undefined : [rule.name]),
    document.combine === "first-applicable" ? policyInternal.firstApplicable : policyInternal.all,
    document.id,
    { nameOf: indexName, canonical: nfc }
  ) as unknown as Policy.Sync
  const defaultDecision = defaultOf(document)
  const policy = defaultDecision === undefined
    ? combined
    : Policy.firstApplicable([combined, Policy.constant(`${document.id}/default`, defaultDecision)], {
      id: `${document.id}+default`
    })
  const self: Rules = {
    id: document.id,
    version: document.version,
    combine: document.combine,
    document,
    policyHash: sha256Hex(canonicalJson(document)),
    policy
  }
  compiled.set(self, { rules, combined, default: defaultDecision })
  return self
}

const invalid = (problems: ReadonlyArray<Problem>, source: string | undefined) =>
  new InvalidRules(source === undefined ? { problems } : { source, problems })

/**
 * The size limits of a rules document, each refused with an
 * {@link InvalidRules} naming where it is exceeded, before anything of the
 * document is decoded (see docs/rules.md, "Limits"):
 *
 * - `maxRules`: rules in the document (default 1,000);
 * - `maxValues`: values of every kind — objects, lists, strings, numbers… —
 *   counted where they occur, so a value referenced twice counts twice
 *   (default 100,000);
 * - `maxGlobLength`: characters of a glob (`match.name`, `match.resource.id`,
 *   a condition's `glob`; default 256);
 * - `maxDocumentBytes`: bytes of a document's text, in UTF-8 (default 1 MiB),
 *   refused before the text is parsed — by {@link parseJson} and the file
 *   readers of `@gavel/adapters`; {@link decode} takes a value, not a text,
 *   and only checks that the limit is a positive integer.
 *
 * Two limits are fixed: conditions nest at most 32 levels
 * ({@link maxConditionDepth}) and objects and lists at most 80
 * ({@link maxNesting}).
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  readonly maxRules: number
  readonly maxValues: number
  readonly maxGlobLength: number
  readonly maxDocumentBytes: number
}

/**
 * The default {@link Limits}.
 *
 * @since 0.1.0
 * @category models
 */
export const defaultLimits: Limits = {
  maxRules: 1_000,
  maxValues: 100_000,
  maxGlobLength: 256,
  maxDocumentBytes: 1_048_576
}

/**
 * How deep conditions (`all`, `any`, `not`) nest at most: 32.
 *
 * @since 0.1.0
 * @category models
 */
export const maxConditionDepth: number = internal.maxConditionDepth

/**
 * How deep objects and lists nest at most anywhere in a rules document: 80,
 * room for conditions at {@link maxConditionDepth} and the levels around
 * them.
 *
 * @since 0.1.0
 * @category models
 */
export const maxNesting: number = internal.maxNesting

/**
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions {
  /** Where the document came from (a file name), for error messages. */
  readonly source?: string | undefined
  /** Limits to use instead of {@link defaultLimits}; each a positive integer. */
  readonly limits?: Partial<Limits> | undefined
}

/** The limits of `options`, or the problems of the ones that are not positive integers. */
const limitsOf = (options: DecodeOptions | undefined): Either.Either<Limits, ReadonlyArray<Problem>> => {
  const limits = { ...defaultLimits }
  const problems: Array<Problem> = []
  for (const key of Object.keys(defaultLimits) as Array<keyof Limits>) {
    const value = options?.limits?.[key]
    if (value === undefined) continue
    if (Number.isSafeInteger(value) && value > 0) limits[key] = value
    else problems.push({ rule: null, path: "", message: `limits.${key} must be a positive integer, not ${typeof value === "number" ? String(value) : show(value)}` })
  }
  return problems.length > 0 ? Either.left(problems) : Either.right(limits)
}

/**
 * Decodes and compiles a rules document (parsed JSON or YAML), or refuses it
 * as a whole with every problem found: unknown field or effect, duplicate
 * rule id, a rule unreachable after a catch-all, a condition unfit for its
 * field's type, an unreachable quorum, a missing reason or approval, and the
 * rest listed in docs/rules.md.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (input: unknown, options?: DecodeOptions): Effect.Effect<Rules, InvalidRules> =>
  Either.match(Either.flatMap(limitsOf(options), (limits) => decodeDocument(input, limits)), {
    onLeft: (problems) => Either.left(invalid(problems, options?.source)),
    onRight: (document) => Either.right(build(document))
  })

/** Bytes of `text` in UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD). */
const utf8Length = (text: string): number => {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) bytes += 1
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2 // a surrogate pair: 4 bytes for 2 units
      i++
    } else bytes += 2
  }
  return bytes
}

const sizeProblems = (bytes: number, limits: Limits): Array<Problem> =>
  bytes <= limits.maxDocumentBytes ? [] : [{
    rule: null,
    path: "",
    message: `a rules document is at most ${limits.maxDocumentBytes} bytes long (limits.maxDocumentBytes); this one has ${bytes}`,
    line: 1,
    column: 1
  }]

/** The limits of `options` for a text: a limit's problem is the whole text's, at its start. */
const textLimitsOf = (options: DecodeOptions | undefined): Either.Either<Limits, ReadonlyArray<Problem>> =>
  Either.mapLeft(limitsOf(options), (problems) => problems.map((p) => ({ ...p, line: 1, column: 1 })))

/**
 * The problems of a document's size before its text is parsed: a text (its
 * length in UTF-8) or a number of bytes over `limits.maxDocumentBytes`, or a
 * limit that is not a positive integer, at line 1, column 1. Empty when the
 * size is within the limit. {@link parseJson} checks it; file readers check
 * it before reading.
 *
 * @since 0.1.0
 * @category decoding
 */
export const checkSize = (text: string | number, options?: DecodeOptions): ReadonlyArray<Problem> =>
  Either.match(textLimitsOf(options), {
    onLeft: (problems) => problems,
    onRight: (limits) => sizeProblems(typeof text === "number" ? text : utf8Length(text), limits)
  })

const pathSegments = /[^.[\]]+|\[(\d+)\]/g

/** The segments of a formatted path (`rules[3].when.gt`). */
const segmentsOf = (path: string): Array<string | number> =>
  Array.from(path.matchAll(pathSegments), (m) => (m[1] !== undefined ? Number(m[1]) : m[0]))

/**
 * {@link decode} from JSON text, with the line and column of every
 * problem. A syntax error is an {@link InvalidRules} too, and so is a key
 * that appears twice in an object (at any depth; keys equal in Unicode NFC
 * are the same key): `JSON.parse` would keep the last one, and the document
 * would read one way to its reviewer and another to gavel. The text is
 * parsed once, without recursion, and refused up front when it is longer
 * than `limits.maxDocumentBytes` or nested deeper than {@link maxNesting}.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parseJson = (text: string, options?: DecodeOptions): Effect.Effect<Rules, InvalidRules> => {
  const source = options?.source
  const limits = textLimitsOf(options)
  if (Either.isLeft(limits)) return Either.left(invalid(limits.left, source))
  const size = sizeProblems(utf8Length(text), limits.right)
  if (size.length > 0) return Either.left(invalid(size, source))
  const parsed = json.parse(text, { maxDepth: maxNesting, tooDeep: internal.tooDeep })
  if (parsed._tag === "Refused") {
    const raws = typeof parsed.partial === "object" && parsed.partial !== null
      ? (parsed.partial as { rules?: unknown }).rules
      : undefined
    return Either.left(invalid(
      parsed.problems.map(({ path, ...problem }) => ({ rule: nameOf(raws, path), path: formatPath(path), ...problem })),
      source
    ))
  }
  return Either.match(decodeDocument(parsed.value, limits.right), {
    onLeft: (problems) =>
      Either.left(invalid(problems.map((p) => ({ ...p, ...parsed.positionOf(segmentsOf(p.path)) })), source)),
    onRight: (document) => Either.right(build(document))
  })
}

// -----------------------------------------------------------------------------
// policy sets and explanations
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface PolicySetOptions {
  readonly decisionPolicy?: { readonly id: string; readonly decide: Policy.DecisionPolicy } | undefined
  readonly overridePolicy?: DecisionRecord.OverridePolicy | undefined
  readonly ttl?: Duration.DurationInput | undefined
  readonly explain?: PolicySet.ExplainMode | undefined
}

/**
 * The document as a policy set: its id and version, its rules, its
 * `default` as the set's default (so a record decided by it says
 * `defaulted: true`; without one, the set denies with
 * `policy.no_applicable`), and the document's hash as `policyHash`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const policySet = (rules: Rules, options?: PolicySetOptions): PolicySet.Sync => {
  const { combined, default: defaultDecision } = compiledOf(rules)
  // Ids, version and default were validated when the document was decoded,
  // and rule ids are unique: this cannot throw.
  return PolicySet.unsafeMake({
    id: rules.id,
    version: rules.version,
    policy: combined,
    policyHash: rules.policyHash,
    default: defaultDecision,
    decisionPolicy: options?.decisionPolicy,
    overridePolicy: options?.overridePolicy,
    ttl: options?.ttl,
    explain: options?.explain
  })
}

/**
 * Which rules matched an action, which decided, and the decision record.
 *
 * - `matched`: every rule whose match and conditions hold (each evaluated on
 *   its own, so a rule shadowed under first-applicable is listed too), with
 *   what it says; a rule whose conditions are indeterminate is listed with
 *   its `rules.indeterminate` denial.
 * - `decidedBy`: under first-applicable the first of them; under deny-wins
 *   those whose decision is the final one. Empty when the default decided
 *   (`record.defaulted`).
 *
 * @since 0.1.0
 * @category models
 */
export const Explanation = Schema.Struct({
  matched: Schema.Array(Schema.Struct({ ruleId: Schema.String, result: Decision.Decision })),
  decidedBy: Schema.Array(Schema.String),
  record: DecisionRecord.DecisionRecord
}).annotations({ identifier: "RulesExplanation" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Explanation extends Schema.Schema.Type<typeof Explanation> {}

/**
 * Explains how a rules document decides `action` (see {@link Explanation}).
 *
 * @since 0.1.0
 * @category evaluation
 */
export const explain = (
  rules: Rules,
  action: Action.Action,
  options?: PolicySet.EvaluateSyncOptions
): Explanation => {
  const matched: Array<{ readonly ruleId: string; readonly result: Decision.Decision }> = []
  const name = read.name(action)
  for (const rule of compiledOf(rules).rules) {
    if (rule.name !== undefined && !isText(name, rule.name)) continue
    const result = Policy.evaluateSync(rule.policy, action)
    if (Decision.isDecision(result)) matched.push({ ruleId: rule.id, result })
  }
  const record = PolicySet.evaluateSync(policySet(rules), action, options)
  const decidedBy = record.defaulted
    ? []
    : rules.combine === "first-applicable"
    ? matched.slice(0, 1).map((m) => m.ruleId)
    : matched.filter((m) => m.result._tag === record.decision._tag).map((m) => m.ruleId)
  return { matched, decidedBy, record }
}
